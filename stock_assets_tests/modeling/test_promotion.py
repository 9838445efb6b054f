"""The promotion gate's rule: beat the champion and persistence by the margin, on enough data."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling import promotion
from stock_assets.modeling.forecast import TARGET_COLUMNS, Forecaster


def scores(challenger: float, champion: float, persistence: float) -> dict:
    return {
        "challenger": {"price_rmse": challenger},
        "champion": {"price_rmse": champion},
        "persistence": {"price_rmse": persistence},
    }


@pytest.mark.parametrize(
    ("challenger", "champion", "persistence", "margin", "promote"),
    [
        (0.95, 1.00, 1.00, 0.00, True),
        (0.95, 1.00, 1.00, 0.04, True),
        (0.95, 1.00, 1.00, 0.06, False),  # not better by the margin
        (1.00, 1.00, 1.00, 0.00, False),  # a tie keeps the champion
        (0.95, 0.90, 1.00, 0.00, False),  # beats persistence, not the champion
        (0.95, 1.00, 0.94, 0.00, False),  # beats the champion, not persistence
        (np.nan, 1.00, 1.00, 0.00, False),  # no score is no promotion
    ],
)
def test_the_challenger_must_beat_both_by_the_margin(
    challenger, champion, persistence, margin, promote
):
    decision = promotion.decide(scores(challenger, champion, persistence), margin, 60, 20)
    assert decision.promote is promote
    assert decision.outcome == ("promoted" if promote else "refused")
    assert "over 60 sessions" in decision.reason


def test_too_short_a_window_is_refused_whatever_the_scores():
    decision = promotion.decide(scores(0.5, 1.0, 1.0), 0.0, 19, 20)
    assert not decision.promote and "19 sessions" in decision.reason


def test_an_empty_window_scores_as_nothing_and_is_refused():
    labelled = pd.DataFrame(
        {
            "ticker": pd.Series(dtype="str"),
            "date": pd.Series(dtype="datetime64[ns]"),
            **{
                c: pd.Series(dtype="float64")
                for c in ("close", "label", "ret_1d", "ret_20d", "vol_20")
            },
        }
    )
    result = promotion.window_scores(labelled, pd.DataFrame(), pd.DataFrame())
    returns = result["return"]
    assert np.isnan(returns["challenger"]["price_rmse"]) and returns["challenger"]["rows"] == 0
    assert not promotion.decide(returns, 0.0, 0, 20).promote


def test_a_missing_forecast_counts_as_the_baselines():
    labelled = pd.DataFrame(
        {
            "ticker": ["A", "A"],
            "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "close": [100.0, 100.0],
            "label": [0.01, -0.01],
            "ret_1d": [0.0, 0.01],
            "ret_20d": [0.0, 0.01],
            "vol_20": [0.02, 0.02],
        }
    )
    perfect_once = (
        Forecaster()
        .predict(labelled.head(1))
        .assign(
            ticker="A", as_of_date="2024-01-02", predicted_return=0.01, predicted_volatility=0.5
        )
    )
    forecast = promotion.aligned_forecast(labelled, perfect_once)
    assert forecast["predicted_return"].tolist() == [0.01, 0.0]
    assert forecast["predicted_volatility"].tolist() == [0.5, 0.02]
    result = promotion.window_scores(labelled, perfect_once, pd.DataFrame())["return"]
    # Row 2 scores as persistence (error 1.0), row 1 is exact: RMSE sqrt(1/2).
    assert result["challenger"]["price_rmse"] == pytest.approx(np.sqrt(0.5))
    assert result["champion"]["price_rmse"] == pytest.approx(1.0)


def test_each_target_is_judged_on_its_own_loss_and_baseline():
    def target(challenger: float, champion: float, baseline: str, base: float, loss: str):
        return {
            "challenger": {loss: challenger},
            "champion": {loss: champion},
            baseline: {loss: base},
        }

    scores = {
        "return": target(1.01, 1.0, "persistence", 1.0, "price_rmse"),
        "range": target(0.95, 1.0, "trailing_gaussian", 1.0, "pinball"),
        # Beats the champion, not the baseline the champion never beat either.
        "volatility": target(0.95, 1.0, "trailing_volatility", 0.9, "qlike"),
        # The score's loss is 1 - IC: 0.97 is an IC of 0.03 against the champion's 0.01.
        "score": target(0.97, 0.99, "momentum_20", 1.0, "ic_loss"),
    }
    decisions = promotion.decide_targets(scores, 0.0, 60, 20)
    assert {t: d.promote for t, d in decisions.items()} == {
        "return": False,
        "range": True,
        "volatility": False,
        "score": True,
    }
    assert "pinball challenger 0.95" in decisions["range"].reason
    assert "does not beat trailing_volatility" in decisions["volatility"].reason


def test_a_composed_forecaster_takes_the_promoted_parts_and_keeps_the_rest():
    champion = Forecaster({"volatility": "old-har"}, {"volatility": "har"})
    challenger = Forecaster(
        {"return": "ridge-fit", "volatility": "new-har", "range": "quantiles"},
        {"return": "ridge", "volatility": "har", "range": "har_filtered_quantiles"},
    )
    composed = champion.with_parts_of(challenger, ["volatility", "range"])
    assert composed.parts == {"volatility": "new-har", "range": "quantiles"}
    assert composed.part_name("return") == "persistence"
    assert composed.part_name("range") == "har_filtered_quantiles"
    back = composed.with_parts_of(Forecaster(), ["range"])
    assert back.part_name("range") == "trailing_gaussian"
    assert "range" not in back.parts


def test_a_rollback_goes_to_the_replaced_version_or_a_named_one_and_marks_the_champion():
    now = pd.Timestamp("2026-12-02T10:00:00Z")
    tags = {promotion.PREVIOUS_CHAMPION: "3"}
    target, marks = promotion.rollback("m", "5", tags, ["1", "3", "5"], None, now)
    assert target == "3" and marks == {"rolled_back": "2026-12-02T10:00:00+00:00 to version 3"}
    assert promotion.rollback("m", "5", tags, ["1", "3", "5"], "1", now)[0] == "1"
    with pytest.raises(promotion.RollbackRefused, match="was not promoted over another"):
        promotion.rollback("m", "5", {}, ["1", "5"], None, now)
    with pytest.raises(promotion.RollbackRefused, match=r"no version 9 \(versions: 1, 3, 5\)"):
        promotion.rollback("m", "5", tags, ["5", "1", "3"], "9", now)


def test_the_gate_leaves_nothing_to_decide_for_the_champion_or_a_rolled_back_challenger():
    model, baseline = {"candidate": "model"}, {"candidate": "persistence"}
    assert promotion.unchanged_reason(("4", model), ("4", model)) == (
        "version 4 is already the champion"
    )
    rolled = {promotion.ROLLED_BACK: "2026-12-02 to version 3", **model}
    assert "was rolled back (2026-12-02 to version 3)" in promotion.unchanged_reason(
        ("3", model), ("4", rolled)
    )
    assert promotion.unchanged_reason(("3", model), ("4", model)) is None
    assert promotion.unchanged_reason(("3", baseline), ("4", model)) is None
    assert promotion.unchanged_reason(("3", baseline), ("4", baseline)).startswith(
        "neither version 3 nor 4 learned from data"
    )


def test_the_gates_outcome_names_what_it_promoted_and_tags_the_challenger():
    yes, no = promotion.Decision(True, "beats both"), promotion.Decision(False, "does not")
    scores = {
        "return": {"challenger": {"price_rmse": 0.01, "ic": float("nan")}},
        "volatility": {"challenger": {"qlike": 1.5}},
    }
    partly = promotion.Outcome({"return": no, "volatility": yes}, "2024-01-02..2024-02-01", "3")
    assert partly.promoted == ["volatility"] and partly.outcome == promotion.PROMOTED
    assert not partly.replaces_whole
    tags = partly.tags(scores, "run-1")
    assert tags["promotion.volatility.decision"] == "promoted"
    assert tags["promotion.reason"] == "return: does not; volatility: beats both"
    assert tags["promotion.challenger.price_rmse"] == "0.01"  # the return's keep their names
    assert tags["promotion.volatility.challenger.qlike"] == "1.5"
    assert "promotion.challenger.ic" not in tags and promotion.PREVIOUS_CHAMPION not in tags
    whole = promotion.Outcome({"return": yes, "volatility": yes}, "w", "3")
    assert whole.replaces_whole and whole.tags(scores, "r")[promotion.PREVIOUS_CHAMPION] == "3"
    refused = promotion.Outcome({"return": no}, "w", "3")
    assert refused.outcome == promotion.REFUSED and refused.promoted == []
    assert refused.table("4").loc["return", "serving part from"] == "version 3"
    assert partly.table("4").loc["volatility", "serving part from"] == "version 4"


def test_a_composite_names_each_parts_version_and_spans_both_training_windows():
    champion = ("5", {"part.return.version": "2", "feature_set": "old"})
    challenger = ("7", {"feature_set": "a,b"})
    windows = [
        (pd.Timestamp("2020-01-02"), pd.Timestamp("2022-06-30")),
        (pd.Timestamp("2020-03-02"), pd.Timestamp("2023-01-31")),
    ]
    names = {"return": "ridge", "volatility": "har", "range": "quantiles", "score": "lgbm"}
    tags = promotion.composite_tags(champion, challenger, ["volatility"], windows, names, "w")
    assert tags["data_window"] == "2020-01-02..2023-01-31"
    assert tags["part.return.version"] == "2"  # kept from the composite it came from
    assert tags["part.range.version"] == "5" and tags["part.volatility.version"] == "7"
    assert tags["part.score.model"] == "lgbm" and tags["feature_set"] == "a,b"
    assert tags[promotion.PREVIOUS_CHAMPION] == "5"
    assert not promotion.is_trained({"candidate": "persistence"})
    assert promotion.is_trained({"candidate": "composite"})


def test_a_composites_scores_and_backtest_come_from_the_part_that_serves_each_target():
    scores = {
        "return": {"challenger": {"x": 1.0}, "champion": {"x": 2.0}, "persistence": {"x": 3.0}},
        "volatility": {"challenger": {"x": 4.0}, "champion": {"x": 5.0}},
    }
    composite = promotion.composite_scores(scores, ["volatility"])
    assert composite["return"] == {"model": {"x": 2.0}, "persistence": {"x": 3.0}}
    assert composite["volatility"] == {"model": {"x": 4.0}}
    keys = pd.DataFrame({"ticker": ["A", "A", "B"], "date": pd.to_datetime(["2024-01-02"] * 3)})
    keys["date"] += pd.to_timedelta([0, 1, 0], unit="D")
    columns = [c for cs in TARGET_COLUMNS.values() for c in cs]
    challenger = keys.assign(**dict.fromkeys(columns, 1.0))
    champion = keys.iloc[:2].assign(**dict.fromkeys(columns, 2.0))
    merged = promotion.composite_backtest(challenger, champion, ["volatility"])
    assert (merged["predicted_volatility"] == 1.0).all()
    assert merged["predicted_return"].tolist()[:2] == [2.0, 2.0]
    assert np.isnan(merged["predicted_return"].iloc[2])  # the champion made no forecast there
    assert list(merged[["ticker", "date"]].itertuples(index=False)) == list(
        keys.itertuples(index=False)
    )
