"""The promotion gate's rule: beat the champion and the baseline by the margin and by more than
noise, on the same rows, on enough data."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
from stock_assets.market import calendar
from stock_assets.modeling import evidence, promotion
from stock_assets.modeling.forecast import TARGET_COLUMNS, Forecaster


def window_of(sessions: int, tickers: int, seed: int = 0) -> pd.DataFrame:
    """Labelled feature rows of a universe over consecutive NYSE sessions (and the data's
    last, unlabelled session after them)."""
    rng = np.random.default_rng(seed)
    dates = calendar.sessions_in_range("2024-01-02", "2026-01-01")[: sessions + 1]
    n = tickers * len(dates)
    rows = pd.DataFrame(
        {
            "ticker": np.repeat([f"T{i:03d}" for i in range(tickers)], len(dates)),
            "date": np.tile(dates, tickers),
            "close": 100.0,
            **{name: rng.standard_normal(n) * 0.01 for name in FEATURE_COLUMNS},
        }
    )
    rows["vol_20"] = 0.01 * np.exp(rng.standard_normal(len(rows)) * 0.5)
    rows["ret_1d"] = rows["vol_20"] * rng.standard_normal(len(rows))
    return attach_label(rows)


def predictions(rows: pd.DataFrame, **columns) -> pd.DataFrame:
    """The baselines' forecasts for `rows`, with `columns` replaced, as a version gives them."""
    forecast = Forecaster().predict(rows).assign(**columns)
    return forecast.assign(ticker=rows["ticker"].to_numpy(), as_of_date=rows["date"].to_numpy())


def gate(labelled, challenger, champion, margin=0.0, level=0.05):
    sessions = promotion.evaluation_sessions(labelled, labelled["date"].min() - pd.Timedelta("1D"))
    window = promotion.window_scores(labelled, sessions, challenger, champion, margin)
    return window, promotion.decide_targets(window, level, margin, len(sessions), 20)


def test_a_volatility_forecast_that_knows_the_variance_is_promoted_on_its_evidence():
    labelled = window_of(60, 30)
    # The next session's true volatility is the label's scale: a forecast that knows it.
    known = labelled.groupby("ticker")["vol_20"].shift(-1).fillna(labelled["vol_20"])
    challenger = predictions(labelled, predicted_volatility=known.to_numpy())
    window, decisions = gate(labelled, challenger, predictions(labelled))
    volatility = decisions["volatility"]
    assert volatility.promote, volatility.reason
    assert volatility.comparisons["champion"].p_value < 0.001
    assert volatility.comparisons["baseline"].statistic < 0
    assert volatility.p_adjusted <= 0.05
    assert "Holm-adjusted p" in volatility.reason and "QLIKE challenger" in volatility.reason
    # The return is persistence's own: identical forecasts are no evidence.
    assert not decisions["return"].promote
    assert decisions["return"].comparisons["champion"].p_value == 1.0
    assert decisions["return"].comparisons["champion"].test.startswith("clark-west")
    columns = volatility.evidence_columns()
    assert set(columns) == {
        "p_adjusted", "stat_vs_champion", "p_vs_champion", "stat_vs_baseline", "p_vs_baseline",
        "evidence_test",
    }  # fmt: skip
    # Every feature row of the window is scored (nothing is missing), the last has no outcome.
    assert window.rows_scored == 60 * 30 and window.excluded == {}


def test_a_challenger_no_better_than_noise_is_refused_however_its_loss_compares():
    labelled = window_of(30, 20, seed=1)
    rng = np.random.default_rng(5)
    noisy = labelled["vol_20"] * np.exp(0.02 * rng.standard_normal(len(labelled)))
    window, decisions = gate(
        labelled, predictions(labelled, predicted_volatility=noisy), pd.DataFrame()
    )
    volatility = decisions["volatility"]
    assert not volatility.promote
    assert "does not beat both by more than noise" in volatility.reason
    assert volatility.comparisons["champion"].p_value > 0.05


def test_a_margin_enters_every_sessions_differential():
    labelled = window_of(60, 30)
    known = labelled.groupby("ticker")["vol_20"].shift(-1).fillna(labelled["vol_20"])
    challenger = predictions(labelled, predicted_volatility=known.to_numpy())
    loose, _ = gate(labelled, challenger, predictions(labelled))
    strict, decisions = gate(labelled, challenger, predictions(labelled), margin=0.9)
    assert (
        strict.comparisons["volatility"]["champion"].statistic
        > loose.comparisons["volatility"]["champion"].statistic
    )
    assert not decisions["volatility"].promote


def test_too_short_a_window_is_refused_whatever_the_scores():
    labelled = window_of(15, 30)
    known = labelled.groupby("ticker")["vol_20"].shift(-1).fillna(labelled["vol_20"])
    _, decisions = gate(labelled, predictions(labelled, predicted_volatility=known), pd.DataFrame())
    assert not decisions["volatility"].promote and "15 sessions" in decisions["volatility"].reason


def test_a_target_that_cannot_be_tested_is_refused_with_its_cause():
    labelled = window_of(30, 5)  # five tickers: too few to rank, so no score at all
    _, decisions = gate(labelled, predictions(labelled), pd.DataFrame())
    assert not decisions["score"].promote
    assert "cannot be judged" in decisions["score"].reason
    assert "ranks at least 10 tickers" in decisions["score"].reason
    assert np.isnan(decisions["score"].p_adjusted)


def test_rows_with_a_gap_a_delisting_or_no_features_are_counted_and_left_out_of_every_score():
    labelled = window_of(40, 12)
    dates = np.sort(labelled["date"].unique())
    gone = (labelled["ticker"] == "T000") & (labelled["date"] > dates[20])  # delisted
    hole = (labelled["ticker"] == "T001") & (labelled["date"] == dates[10])  # a missing day
    labelled = attach_label(labelled[~gone & ~hole].drop(columns="label"))
    warm = (labelled["ticker"] == "T002") & (labelled["date"] < dates[5])  # just listed
    labelled.loc[warm, "rsi_14"] = np.nan
    window, _ = gate(labelled, predictions(labelled), pd.DataFrame())
    assert window.excluded == {"gap": 1, "delisted": 1, "no_features": 5}
    feature_rows = (labelled["date"] < dates[-1]).sum()
    assert window.rows_scored + window.rows_excluded == feature_rows
    for target, (loss, baseline) in promotion.GATE_LOSSES.items():
        if target != "score":  # twelve tickers: some sessions too few to rank
            for candidate in ("challenger", "champion", baseline):
                assert np.isfinite(window.scores[target][candidate][loss]), (target, candidate)


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
    test = evidence.Comparison(-3.0, 0.004, 60, 6, "ewc t(6)")
    comparisons = {"champion": test, "baseline": test}
    yes = promotion.Decision(True, "beats both", comparisons, 0.008)
    no = promotion.Decision(False, "does not")
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
    assert tags["promotion.volatility.p_vs_champion"] == "0.004"
    assert tags["promotion.volatility.p_adjusted"] == "0.008"
    assert tags["promotion.volatility.evidence_test"] == "ewc t(6)"
    assert "promotion.return.p_vs_champion" not in tags
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
