"""The universe at a glance: each ticker's latest forecast, how often the ranges held, the
score's extremes, and what serves each target on what evidence.

Pure functions of the frames the queries return (`reporting.queries`), vectorised: the
dashboard's universe view calls them for thousands of tickers at a time.
"""

from __future__ import annotations

import pandas as pd

from stock_assets.modeling.forecast import BASELINES
from stock_assets.modeling.promotion import GATE_LOSSES, PROMOTED
from stock_assets.modeling.targets import RANGES, TARGETS

LIVE = "live"
TOP, BOTTOM = "top", "bottom"
# The forecast table's columns, in order: id -> (header, how to show it). A share is a
# fraction shown as a percentage; a price is in the ticker's currency, as traded.
TABLE_COLUMNS = {
    "ticker": ("ticker", "text"),
    "as_of_date": ("as of", "text"),
    "kind": ("kind", "text"),
    "score": ("score", "number"),
    "rank": ("rank", "integer"),
    "predicted_volatility": ("volatility", "share"),
    "last_close": ("last close", "price"),
    **{
        column: (header, kind)
        for level in RANGES
        for column, header, kind in (
            (f"close_low_{level}", f"{level}% low", "price"),
            (f"close_high_{level}", f"{level}% high", "price"),
            (f"low_{level}_pct", f"{level}% low vs close", "share"),
            (f"high_{level}_pct", f"{level}% high vs close", "share"),
        )
    },
    **{f"coverage_{level}": (f"inside {level}% so far", "share") for level in RANGES},
    "judged": ("judged", "integer"),
}
CARD_HEADERS = {
    "target": "target",
    "serving": "serving",
    "version": "part of version",
    "since": "since",
    "evidence": "evidence",
    "p_adjusted": "p (Holm)",
    "loss_ratio": "loss / baseline's",
    "latest_gate": "latest gate",
}
BY_BASELINE = "served by the baseline: no model beat it"


def latest_per_ticker(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's latest forecast, one row per ticker in ticker order.

    The rule: its most recent live prediction (kind 'live', what the champion served), or,
    for a ticker never predicted live, its most recent prediction of any kind (a
    walk-forward backtest's). Where versions predicted the same session, the highest
    version. A ticker that stopped trading keeps its last forecast, of an earlier session.
    """
    ordered = predictions.assign(
        _live=predictions["kind"].eq(LIVE),
        _version=pd.to_numeric(predictions["model_version"], errors="coerce"),
    ).sort_values(
        ["ticker", "_live", "as_of_date", "_version"],
        ascending=[True, False, False, False],
        kind="stable",
    )
    latest = ordered.drop_duplicates("ticker").drop(columns=["_live", "_version"])
    return latest.reset_index(drop=True)


def in_latest_session(latest: pd.DataFrame) -> pd.Series:
    """Whether each latest forecast is of the latest session any ticker was predicted from."""
    return latest["as_of_date"].eq(latest["as_of_date"].max())


def score_ranks(latest: pd.DataFrame) -> pd.Series:
    """Each ticker's place by score in the latest session, 1 the highest; missing for a
    ticker with no score or no forecast of that session (scores rank one session's tickers
    against each other only)."""
    scored = latest["score"].where(in_latest_session(latest))
    return scored.rank(ascending=False, method="min").astype("Int64")


def top_and_bottom(latest: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The n highest and the n lowest scores of the latest session, no ticker in both,
    highest first: ticker, score and which end (TOP or BOTTOM) it is at."""
    scored = latest[in_latest_session(latest) & latest["score"].notna()]
    top = scored.nlargest(n, "score")
    bottom = scored.drop(top.index).nsmallest(n, "score")
    both = pd.concat([top.assign(end=TOP), bottom.assign(end=BOTTOM)])
    return both.sort_values("score", ascending=False)[["ticker", "score", "end"]]


def _shares(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Counts of judged predictions and closes inside each range (queries.range_outcomes)
    as the share inside each range, NaN where nothing was judged, beside the count."""
    judged = outcomes["judged"].astype("int64")
    shares = {
        f"coverage_{level}": outcomes[f"inside_{level}"] / judged.where(judged > 0)
        for level in RANGES
    }
    return pd.DataFrame(shares).assign(judged=judged)


def coverage_by_ticker(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per ticker, indexed by it: the share of its judged predictions whose close fell inside
    the 80% and the 90% range so far, and how many were judged. `outcomes` are the counts
    per ticker (queries.range_outcomes(by="ticker"))."""
    return _shares(outcomes.set_index("ticker"))


def coverage_over_time(outcomes: pd.DataFrame, freq: str | None = "W-FRI") -> pd.DataFrame:
    """Across the universe, per period of the target session (`freq`: weeks ending on
    Friday by default; None, per session): the share of every ticker's judged predictions
    whose close fell inside each range, and how many were judged. `outcomes` are the counts
    per session (queries.range_outcomes(by="target_date")); a period's share weighs each
    prediction alike, not each session. Columns period, coverage_80, coverage_90, judged."""
    period = pd.to_datetime(outcomes["target_date"])
    if freq is not None:
        period = period.dt.to_period(freq).dt.end_time.dt.normalize()
    counts = ["judged", *(f"inside_{level}" for level in RANGES)]
    summed = outcomes[counts].groupby(period.rename("period")).sum()
    return _shares(summed).reset_index()


def forecast_table(latest: pd.DataFrame, coverage: pd.DataFrame) -> pd.DataFrame:
    """The latest forecasts (latest_per_ticker) as the table shows them, TABLE_COLUMNS: the
    score's rank in the latest session, the ranges as prices and relative to the close they
    were predicted from, and each ticker's realised coverage so far (coverage_by_ticker; a
    ticker with nothing judged yet has none, and 0 judged)."""
    table = latest.assign(
        as_of_date=pd.to_datetime(latest["as_of_date"]).dt.strftime("%Y-%m-%d"),
        rank=score_ranks(latest),
        # The close predicted from: predicted_close is it times (1 + predicted_return).
        last_close=latest["predicted_close"] / (1 + latest["predicted_return"]),
    )
    for level in RANGES:
        for side in ("low", "high"):
            table[f"{side}_{level}_pct"] = table[f"close_{side}_{level}"] / table["last_close"] - 1
    table = table.merge(coverage, left_on="ticker", right_index=True, how="left")
    table["judged"] = table["judged"].fillna(0).astype(int)
    return table[list(TABLE_COLUMNS)]


def promotions(gates: pd.DataFrame) -> dict[str, pd.Series]:
    """Per target: the challenger's row of the latest gate that promoted it, the part that
    serves it since; absent where no challenger ever won it (its baseline serves)."""
    won = gates[
        gates["candidate"].eq("challenger")
        & gates["champion"].astype(bool)
        & gates["decision"].eq(PROMOTED)
    ]
    return {target: rows.iloc[-1] for target, rows in won.sort_values("id").groupby("target")}


def serving_member(walk_forward: pd.DataFrame, target: str) -> str | None:
    """The zoo member whose part a version serves for a target, from the version's
    walk-forward rows (queries.walk_forward): the member whose loss is the version's own
    (training copies the chosen member's scores onto `model`); the target's baseline where no
    member matches (none could be scored); None without rows to tell."""
    model = walk_forward.get("candidate", pd.Series(dtype=object)).eq("model")
    if not model.any():
        return None
    loss = GATE_LOSSES[target][0]
    members = walk_forward[walk_forward["model_version"].notna() & ~model]
    matched = members[members[loss].eq(walk_forward.loc[model, loss].iloc[0])]
    return str(matched["candidate"].iloc[0]) if len(matched) else BASELINES[target]


def model_card(gates: pd.DataFrame, walk_forwards: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per target (TARGETS order, CARD_HEADERS): which member serves it, from which version,
    since which gate, on what evidence, and what the latest gate decided.

    `gates` holds every promotion gate's rows (queries.promotion_gates); `walk_forwards`,
    per promoted target, the walk-forward rows of the version that won it
    (queries.walk_forward), which name its member. A target no challenger ever won is
    served by its baseline since the first gate. A rollback (`stock-assets rollback`)
    leaves no row in the warehouse, so the card does not see one.
    """
    won = promotions(gates)
    gates = gates.assign(day=pd.to_datetime(gates["created_at"], utc=True).dt.strftime("%Y-%m-%d"))
    rows = []
    for target in TARGETS:
        judged = gates[gates["target"].eq(target)].sort_values("id")
        if judged.empty:
            rows.append({"target": target, "evidence": "no promotion gate has judged it yet"})
            continue
        latest = judged[judged["dagster_run_id"].eq(judged["dagster_run_id"].iloc[-1])]
        row = {"target": target, "latest_gate": _gate_summary(latest)}
        if target in won:
            winner = won[target]
            member = serving_member(walk_forwards.get(target, pd.DataFrame()), target)
            version = str(winner["model_version"])
            row |= {
                "serving": member or f"version {version}'s part",
                "version": version,
                "since": gates.loc[winner.name, "day"],
                "evidence": _evidence(winner),
                "p_adjusted": winner["p_adjusted"],
                "loss_ratio": _loss_ratio(judged, winner, target),
            }
        else:
            serving = latest[latest["champion"].astype(bool)]
            row |= {
                "serving": f"{BASELINES[target]} (baseline)",
                "version": str(serving["model_version"].iloc[0]) if len(serving) else None,
                "since": judged["day"].iloc[0],
                "evidence": BY_BASELINE,
            }
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CARD_HEADERS))


def _evidence(winner: pd.Series) -> str:
    """The challenger's evidence as a person reads it: its adjusted p-value and its tests."""
    parts = [f"promoted at p (Holm) {winner['p_adjusted']:.3g}"]
    for against in ("baseline", "champion"):
        statistic, p = winner[f"stat_vs_{against}"], winner[f"p_vs_{against}"]
        if pd.notna(statistic):
            parts.append(f"t vs {against} {statistic:.2f} (p {p:.3g})")
    test = winner.get("evidence_test")
    return ", ".join(parts) + (f"; {test}" if isinstance(test, str) and test else "")


def _loss_ratio(judged: pd.DataFrame, winner: pd.Series, target: str) -> float:
    """The winner's gate loss over its target's baseline's, on the gate that promoted it."""
    loss, baseline = GATE_LOSSES[target]
    same = judged[judged["dagster_run_id"].eq(winner["dagster_run_id"])]
    reference = same.loc[same["candidate"].eq(baseline), loss]
    if reference.empty or not reference.iloc[0]:
        return float("nan")
    return float(winner[loss] / reference.iloc[0])


def _gate_summary(latest: pd.DataFrame) -> str:
    """ "2026-12-07: version 5 refused, p (Holm) 0.353" from the latest gate's rows."""
    challenger = latest[latest["candidate"].eq("challenger")]
    if challenger.empty:
        return f"{latest['day'].iloc[0]}: {latest['decision'].iloc[0]}"
    row = challenger.iloc[0]
    p = f", p (Holm) {row['p_adjusted']:.3g}" if pd.notna(row["p_adjusted"]) else ""
    return f"{row['day']}: version {row['model_version']} {row['decision']}{p}"
