"""The universe view's computations on small hand-made frames with known answers."""

import math

import pandas as pd
import pytest

from stock_assets.reporting import charts, universe
from stock_assets.reporting.universe import BY_BASELINE, TABLE_COLUMNS

DAYS = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"])


def prediction(ticker, day, kind="live", version="3", score=None, close=100.0, width=0.02):
    """One price_predictions row as queries.latest_predictions reads it: predicted from
    `close` with no change, its 80% range +-width and its 90% range +-1.5 width."""
    as_of = DAYS[day]
    return {
        "ticker": ticker,
        "as_of_date": as_of,
        "target_date": as_of + pd.offsets.BDay(),
        "kind": kind,
        "model_version": version,
        "predicted_return": 0.0,
        "predicted_close": close,
        "predicted_volatility": width / 1.28,
        "close_low_80": close * (1 - width),
        "close_high_80": close * (1 + width),
        "close_low_90": close * (1 - 1.5 * width),
        "close_high_90": close * (1 + 1.5 * width),
        "score": score,
        "score_note": None if score is not None else "too few tickers",
    }


@pytest.fixture
def predictions() -> pd.DataFrame:
    rows = [
        # Of the last session's two versions, the higher: "10", not "9".
        prediction("AAA", 1, kind="backtest"),
        prediction("AAA", 3, version="9", score=0.1),
        prediction("AAA", 3, version="10", score=0.5, close=50.0),
        prediction("BBB", 3, score=-0.2, close=20.0),
        # A live prediction wins over a backtest's of the same session, whatever the version.
        prediction("BBB", 3, kind="backtest", version="11", score=0.7),
        # Delisted: its last prediction is of an earlier session.
        prediction("CCC", 1, score=0.9),
        # Never predicted live: its latest backtest prediction.
        prediction("DDD", 0, kind="backtest"),
        prediction("DDD", 2, kind="backtest", score=0.3),
        # Predicted before there were ranges.
        {
            **prediction("EEE", 3, score=0.1),
            **dict.fromkeys(["close_low_80", "close_high_80", "close_low_90", "close_high_90"]),
        },
    ]
    frame = pd.DataFrame(rows)
    frame["score"] = frame["score"].astype("float64")
    for column in ("close_low_80", "close_high_80", "close_low_90", "close_high_90"):
        frame[column] = frame[column].astype("float64")
    return frame.sample(frac=1, random_state=1)  # the rule, not the row order, decides


def test_the_latest_forecast_is_the_newest_live_one_else_the_newest_of_any_kind(predictions):
    latest = universe.latest_per_ticker(predictions)
    assert latest["ticker"].tolist() == ["AAA", "BBB", "CCC", "DDD", "EEE"]
    chosen = latest.set_index("ticker")
    assert chosen.loc["AAA", ["kind", "model_version"]].tolist() == ["live", "10"]
    assert chosen.loc["AAA", "as_of_date"] == DAYS[3]
    assert chosen.loc["BBB", ["kind", "score"]].tolist() == ["live", -0.2]
    assert chosen.loc["CCC", "as_of_date"] == DAYS[1]  # delisted: kept, from its last session
    assert chosen.loc["DDD", ["kind", "as_of_date"]].tolist() == ["backtest", DAYS[2]]


def test_scores_rank_only_the_tickers_of_the_latest_session(predictions):
    latest = universe.latest_per_ticker(predictions)
    ranks = dict(zip(latest["ticker"], universe.score_ranks(latest), strict=True))
    # CCC's 0.9 and DDD's 0.3 are of earlier sessions; EEE has a score without ranges.
    assert ranks["AAA"] == 1 and ranks["EEE"] == 2 and ranks["BBB"] == 3
    assert ranks["CCC"] is pd.NA and ranks["DDD"] is pd.NA


def test_the_top_and_bottom_of_the_latest_session_never_share_a_ticker(predictions):
    latest = universe.latest_per_ticker(predictions)
    one = universe.top_and_bottom(latest, n=1)
    assert one[["ticker", "end"]].values.tolist() == [["AAA", "top"], ["BBB", "bottom"]]
    two = universe.top_and_bottom(latest, n=2)
    assert two[["ticker", "end"]].values.tolist() == [
        ["AAA", "top"], ["EEE", "top"], ["BBB", "bottom"],
    ]  # fmt: skip
    assert universe.top_and_bottom(latest.assign(score=float("nan"))).empty
    bars = charts.score_extremes(two, DAYS[3]).data
    assert [(b.name, list(b.y)) for b in bars] == [("top 2", ["AAA", "EEE"]), ("bottom 1", ["BBB"])]


def test_the_table_gives_ranges_against_the_close_and_coverage_so_far(predictions):
    latest = universe.latest_per_ticker(predictions)
    outcomes = pd.DataFrame(
        {"ticker": ["AAA", "BBB", "CCC"], "judged": [4, 10, 1], "inside_80": [3, 8, 0],
         "inside_90": [4, 9, 1]}
    )  # fmt: skip
    table = universe.forecast_table(latest, universe.coverage_by_ticker(outcomes))
    assert list(table.columns) == list(TABLE_COLUMNS)
    rows = table.set_index("ticker")
    aaa = rows.loc["AAA"]
    assert aaa["as_of_date"] == "2024-01-05" and aaa["rank"] == 1
    assert aaa["last_close"] == pytest.approx(50.0)
    assert aaa["close_low_80"] == pytest.approx(49.0) and aaa["close_high_90"] == pytest.approx(
        51.5
    )
    assert aaa["low_80_pct"] == pytest.approx(-0.02) and aaa["high_90_pct"] == pytest.approx(0.03)
    assert (aaa["coverage_80"], aaa["coverage_90"], aaa["judged"]) == (0.75, 1.0, 4)
    assert rows.loc["CCC", "coverage_80"] == 0.0 and rows.loc["CCC", "judged"] == 1
    # No ranges: no percentages and nothing judged, yet its score still ranks.
    eee = rows.loc["EEE"]
    assert math.isnan(eee["low_80_pct"]) and math.isnan(eee["coverage_90"])
    assert eee["judged"] == 0 and eee["rank"] == 2


def test_coverage_over_time_weighs_each_prediction_alike():
    outcomes = pd.DataFrame(
        {
            "target_date": pd.to_datetime(["2024-01-04", "2024-01-05", "2024-01-08"]),
            "judged": [10, 30, 20],
            "inside_80": [8, 21, 16],
            "inside_90": [9, 27, 19],
        }
    )
    weekly = universe.coverage_over_time(outcomes)
    assert weekly["period"].tolist() == list(pd.to_datetime(["2024-01-05", "2024-01-12"]))
    assert weekly["coverage_80"].tolist() == pytest.approx([29 / 40, 0.8])
    assert weekly["coverage_90"].tolist() == pytest.approx([0.9, 0.95])
    assert weekly["judged"].tolist() == [40, 20]
    lines = charts.universe_coverage(weekly).data
    assert [(t.name, list(t.y)) for t in lines[2:]] == [
        ("inside the 90% range", pytest.approx([0.9, 0.95])), ("nominal 90%", [0.9, 0.9]),
    ]  # fmt: skip
    daily = universe.coverage_over_time(outcomes, freq=None)
    assert daily["coverage_80"].tolist() == pytest.approx([0.8, 0.7, 0.8])
    assert universe.coverage_over_time(outcomes.iloc[:0]).empty


GATE = {"model_name": "m", "evaluation": "promotion_gate", "rows": 100}


def gate_rows(run: str, first_id: int, day: str, target: str, rows: list[dict]) -> list[dict]:
    return [
        {**GATE, "id": first_id + i, "dagster_run_id": run, "created_at": f"{day} 18:00:00",
         "target": target, **row}
        for i, row in enumerate(rows)
    ]  # fmt: skip


@pytest.fixture
def gates() -> pd.DataFrame:
    evidence = {"p_adjusted": 0.01, "stat_vs_baseline": -3.0, "p_vs_baseline": 0.002,
                "stat_vs_champion": -2.5, "p_vs_champion": 0.005,
                "evidence_test": "clark-west"}  # fmt: skip
    first = [
        *gate_rows("g1", 1, "2024-01-02", "return", [
            {"candidate": "challenger", "model_version": "3", "champion": True,
             "decision": "promoted", "price_rmse": 0.9, **evidence},
            {"candidate": "champion", "model_version": "2", "champion": False,
             "decision": "promoted", "price_rmse": 1.0},
            {"candidate": "persistence", "model_version": None, "champion": False,
             "decision": "promoted", "price_rmse": 1.0},
        ]),
        *gate_rows("g1", 4, "2024-01-02", "range", [
            {"candidate": "challenger", "model_version": "3", "champion": False,
             "decision": "refused", "pinball": 0.3, "p_adjusted": 0.2},
            {"candidate": "champion", "model_version": "2", "champion": True,
             "decision": "refused", "pinball": 0.25},
        ]),
    ]  # fmt: skip
    later = [
        *gate_rows("g2", 6, "2024-02-01", "return", [
            {"candidate": "challenger", "model_version": "5", "champion": False,
             "decision": "refused", "price_rmse": 0.95, "p_adjusted": 0.4},
            {"candidate": "champion", "model_version": "4", "champion": True,
             "decision": "refused", "price_rmse": 0.9},
        ]),
        *gate_rows("g2", 8, "2024-02-01", "range", [
            {"candidate": "challenger", "model_version": "5", "champion": False,
             "decision": "refused", "pinball": 0.3, "p_adjusted": float("nan")},
            {"candidate": "champion", "model_version": "4", "champion": True,
             "decision": "refused", "pinball": 0.25},
        ]),
    ]  # fmt: skip
    return pd.DataFrame([*first, *later])


def walk_forward(version: str, losses: dict[str, float | None]) -> pd.DataFrame:
    """A version's walk-forward rows for the return: `model` first, baselines unversioned."""
    return pd.DataFrame(
        [
            {"candidate": name, "price_rmse": loss,
             "model_version": None if name in ("persistence", "always_up") else version}
            for name, loss in losses.items()
        ]
    )  # fmt: skip


def test_the_serving_member_is_the_one_whose_loss_the_version_took():
    rows = walk_forward("3", {"model": 0.9, "persistence": 0.9, "ridge": 0.95, "lightgbm": 0.9})
    assert universe.serving_member(rows, "return") == "lightgbm"
    # No member could be scored: the version serves the target's baseline.
    unscored = walk_forward("3", {"model": 1.0, "persistence": 1.0, "ridge": None})
    assert universe.serving_member(unscored, "return") == "persistence"
    assert universe.serving_member(pd.DataFrame(), "return") is None


def test_the_model_card_says_who_serves_each_target_since_when_and_why(gates):
    assert set(universe.promotions(gates)) == {"return"}
    members = {"return": walk_forward("3", {"model": 0.9, "persistence": 1.0, "lightgbm": 0.9})}
    card = universe.model_card(gates, members).set_index("target")
    assert card.index.tolist() == ["return", "range", "volatility", "score"]
    served = card.loc["return"]
    assert (served["serving"], served["version"], served["since"]) == (
        "lightgbm",
        "3",
        "2024-01-02",
    )
    assert served["evidence"] == (
        "promoted at p (Holm) 0.01, t vs baseline -3.00 (p 0.002), t vs champion -2.50 "
        "(p 0.005); clark-west"
    )
    assert served["p_adjusted"] == 0.01 and served["loss_ratio"] == pytest.approx(0.9)
    # A later gate refused the next challenger: the card still names the promotion.
    assert served["latest_gate"] == "2024-02-01: version 5 refused, p (Holm) 0.4"
    baseline = card.loc["range"]
    assert baseline["serving"] == "trailing_gaussian (baseline)"
    assert (baseline["version"], baseline["since"]) == ("4", "2024-01-02")
    assert baseline["evidence"] == BY_BASELINE and math.isnan(baseline["loss_ratio"])
    assert baseline["latest_gate"] == "2024-02-01: version 5 refused"
    assert card.loc["score", "evidence"] == "no promotion gate has judged it yet"
    # Without its walk-forward rows the card names the version, not a member.
    unnamed = universe.model_card(gates, {}).set_index("target")
    assert unnamed.loc["return", "serving"] == "version 3's part"
