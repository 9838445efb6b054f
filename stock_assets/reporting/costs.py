"""What each asset costs a day and a month, from the `asset_costs` rows its runs recorded, and
what it would cost at another universe size and bar interval."""

import numpy as np
import pandas as pd

SESSIONS_PER_MONTH = 252 / 12
WEEKS_PER_MONTH = 52 / 12
# How often an asset runs when the platform is live: a partitioned asset once per session
# (the daily refresh), drift and the report after each refresh, the model on the weekly
# retrain (more often when drift asks for one).
RUNS_PER_MONTH = {"price_model": WEEKS_PER_MONTH, "champion_model": WEEKS_PER_MONTH}
PARTS = ["compute_usd", "storage_usd", "requests_usd", "total_usd", "cpu_s"]
BARS_PER_SESSION = {"1d": 1, "1m": 390}  # a regular NYSE session is 6.5 hours


def daily(rows: pd.DataFrame) -> pd.DataFrame:
    """Per asset, a day's work: the median of each of its cost's parts (PARTS), how that was
    judged (`basis`), and how many such days a month has.

    A partitioned asset's day comes from its runs of one session where there are any (the
    live refresh, fixed costs and all); otherwise from its share of range runs (a backfill
    spreads its fixed costs thin, so that is a lower bound).
    """
    out = []
    for asset, runs in rows.groupby("asset", sort=True):
        partitioned = runs["first_partition"].notna().any()
        single = runs[runs["partitions"] == 1]
        if partitioned and not len(single):
            per = runs[PARTS].div(runs["partitions"], axis=0)
            basis = f"share of {len(runs)} range runs ({int(runs['partitions'].max()):,} sessions)"
        else:
            per = (single if partitioned else runs)[PARTS]
            basis = f"{len(per)} one-session runs" if partitioned else f"{len(per)} runs"
        out.append(
            {
                "asset": asset,
                **per.median().to_dict(),
                "basis": basis,
                "days a month": RUNS_PER_MONTH.get(asset, SESSIONS_PER_MONTH),
            }
        )
    return pd.DataFrame(out, columns=["asset", *PARTS, "basis", "days a month"])


def cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per asset: what a day's work costs, what a month of it costs, and what its runs so far
    cost; with a total."""
    days = daily(rows)
    table = pd.DataFrame(
        {
            "asset": days["asset"],
            "per day usd": days["total_usd"],
            "per month usd": days["total_usd"] * days["days a month"],
            "cpu s a day": days["cpu_s"],
            "recorded usd": days["asset"].map(rows.groupby("asset")["total_usd"].sum()),
            "basis": days["basis"],
        }
    )
    if len(table):
        total = table.drop(columns=["asset", "basis", "cpu s a day"]).sum()
        table = pd.concat(
            [table, pd.DataFrame([{"asset": "total", **total, "basis": ""}])], ignore_index=True
        )
    return table


def growth(batch_graph: dict) -> dict[str, tuple[float, float]]:
    """Each asset's seconds as fixed + per-ticker slope, fitted (least squares) to its step
    times at every universe size `benchmarks/batch_graph.py` measured (the same sessions)."""
    sizes = batch_graph["sizes"]
    tickers = np.array([size["tickers"] for size in sizes], dtype=float)
    fits = {}
    for asset in sizes[0]["assets"]:
        seconds = np.array([size["assets"].get(asset, np.nan) for size in sizes], dtype=float)
        known = ~np.isnan(seconds)
        if known.sum() >= 2:
            slope, fixed = np.polyfit(tickers[known], seconds[known], 1)
            fits[asset] = (max(float(fixed), 0.0), max(float(slope), 0.0))
    return fits


def projection(
    rows: pd.DataFrame,
    fits: dict[str, tuple[float, float]],
    measured_tickers: int,
    tickers: int,
    bars_per_session: int,
) -> pd.DataFrame:
    """Each asset's monthly cost at another universe size and bar interval.

    Compute grows as the benchmark's fit says the asset's time grows with the bars it handles
    (fixed + slope x tickers x bars per session, over the same at the universe measured);
    storage with the bars; requests not at all (one object per session and dataset, whatever
    it holds). An asset the benchmark did not time keeps its measured compute.
    """
    days = daily(rows)
    bars = tickers * bars_per_session
    out = []
    for _, day in days.iterrows():
        fixed, slope = fits.get(day["asset"], (1.0, 0.0))
        compute_growth = (fixed + slope * bars) / (fixed + slope * measured_tickers)
        projected = (
            day["compute_usd"] * compute_growth
            + day["storage_usd"] * bars / measured_tickers
            + day["requests_usd"]
        )
        out.append(
            {
                "asset": day["asset"],
                "per month usd now": day["total_usd"] * day["days a month"],
                "compute growth": compute_growth,
                "projected per month usd": projected * day["days a month"],
            }
        )
    table = pd.DataFrame(out)
    if len(table):
        total = table[["per month usd now", "projected per month usd"]].sum()
        table = pd.concat([table, pd.DataFrame([{"asset": "total", **total}])], ignore_index=True)
    return table
