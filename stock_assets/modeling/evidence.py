"""The evidence behind a promotion: which rows a window scores, and one-sided tests of
per-session loss differentials.

Rows. Every score of a window, for every version and baseline alike, is computed on the same
rows: those with a label (the next session's return, `features.indicators.attach_label`) and
every feature (the rows a version is asked about: the served model forecasts nothing else).
Each feature row left out is counted under one reason of EXCLUSIONS, so that the rows scored
and the rows excluded add up to the window's feature rows.

Tests. For each target the gate compares the challenger with the champion and with the
target's baseline on the same sessions. A comparison reduces the window to one loss
differential per session,

    d_t = L_challenger,t - (1 - margin) * L_reference,t,

where L is the session's mean loss over its scored rows (for the score, 1 - the session's
rank IC), and asks whether the mean of d is below zero by more than noise.

The statistic is the mean of d over its standard error, with the long-run variance estimated
by equal-weighted cosines (EWC): B = max(2, floor(0.4 * T^(2/3))) cosine projections of d,
which under fixed-b asymptotics makes the statistic Student-t with B degrees of freedom
(Lazarus, Lewis, Stock and Watson 2018, "HAR inference: recommendations for practice"). It is
chosen over a stationary block bootstrap because it allows for autocorrelated differentials
(volatility regimes last weeks) with no lag or block length to tune, its p-values are exact
under fixed-b where normal ones over-reject in windows of 20 to 60 sessions, it is
deterministic (a gate run again on the same data decides the same), and it costs microseconds,
so `benchmarks/gate.py` can measure its size and power over thousands of replications. Row
losses are heavy-tailed, but a session's mean over a universe is far less so; the benchmark
measures size with t(4) session differentials as well.

Return. The challenger nests persistence (the zero forecast): with no predictability its
estimated coefficients add only noise, which inflates its squared error, so against a zero
forecast the challenger's squared error is reduced by (forecast - reference forecast)^2, Clark
and West's (2007) adjustment. Against a champion that forecasts returns, plain squared errors.
Errors are of returns, not prices, so that high-priced tickers do not dominate. Clark-West asks
whether the model carries signal; a model that does, but whose estimation noise still makes its
squared error on the window larger than persistence's, would serve a worse forecast, so the
gate also requires the challenger's own loss to be the lower (`Comparison.lower_loss`).

A decision needs the challenger to beat both references: its p-value is the larger of the two
(an intersection-union test). Across the targets, Holm's step-down correction keeps the chance
of any false promotion in one gate run at most the level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL, next_bar_dates
from stock_assets.market import calendar
from stock_assets.market.universe import is_member
from stock_assets.modeling.forecast import RETURN_QUANTILE_COLUMNS
from stock_assets.modeling.targets import (
    RANGE,
    RETURN,
    SCORE,
    VOLATILITY_WINDOW,
    daily_correlations,
    pinball_row_losses,
    qlike_row_losses,
)

# Why a feature row of a window is left out of every score, in the order they are tested.
NOT_MEMBER = "not_member"  # outside the ticker's intervals in the point-in-time membership file
GAP = "gap"  # the ticker has no bar on the next session, but trades later: a halt or a hole
DELISTED = "delisted"  # the row is the ticker's last bar, before the data's last session
NO_OUTCOME = "no_outcome"  # the next session is not in the data yet
NO_FEATURES = "no_features"  # a feature is missing (the warm-up after a listing): no forecast
NO_BASELINE = "no_baseline"  # the target's baseline has no value for the row
EXCLUSIONS = (NOT_MEMBER, GAP, DELISTED, NO_OUTCOME, NO_FEATURES, NO_BASELINE)

# The ratio of basis functions to T^(2/3) that Lazarus et al. recommend, and the fewest.
_EWC_FACTOR = 0.4
_MIN_COSINES = 2


def exclusion_reasons(labelled: pd.DataFrame) -> np.ndarray:
    """Each row's reason (EXCLUSIONS) for being left out of every score, "" if it is scored.

    `labelled` holds feature rows sorted by ticker and date, with their label (attach_label);
    the data's last session is the latest date in it. A row unlabelled for none of the reasons
    of the next bar (a gap, a delisting, the end of the data) lies in the warm-up, whose
    returns are not computed: it counts as no_features.
    """
    reasons = np.full(len(labelled), "", dtype=object)
    if not len(labelled):
        return reasons
    following = next_bar_dates(labelled)
    expected = calendar.next_sessions(labelled["date"]).to_numpy(dtype="datetime64[ns]")
    last = (labelled["date"] == labelled["date"].max()).to_numpy()
    reasons[~np.isnat(following) & (following != expected)] = GAP
    reasons[np.isnat(following) & ~last] = DELISTED
    reasons[np.isnat(following) & last] = NO_OUTCOME
    # A label missing for no reason above is the next bar's own return missing: the warm-up.
    reasons[~_complete(labelled) & (reasons == "")] = NO_FEATURES
    reasons[~_baseline_defined(labelled) & (reasons == "")] = NO_BASELINE
    return reasons


def scoreable(rows: pd.DataFrame) -> np.ndarray:
    """Whether each feature row can be scored: a label, every feature, and a baseline (the rows
    exclusion_reasons gives no reason for); training learns and is scored on these alone."""
    return _complete(rows) & _baseline_defined(rows)


def _complete(rows: pd.DataFrame) -> np.ndarray:
    """Every feature and the label present. Column by column: a mask of every feature at once
    is a gigabyte on a large universe."""
    complete = np.ones(len(rows), dtype=bool)
    for name in [*FEATURE_COLUMNS, LABEL]:
        complete &= rows[name].notna().to_numpy()
    return complete


def _baseline_defined(rows: pd.DataFrame) -> np.ndarray:
    """The trailing volatility the baselines stand on is above zero: it is zero only after
    weeks of an unchanged close, which other features already miss, and a zero variance would
    make QLIKE infinite."""
    return rows[f"vol_{VOLATILITY_WINDOW}"].to_numpy(dtype="float64") > 0


def split_window(
    labelled: pd.DataFrame, sessions: pd.DatetimeIndex, membership: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of the window from the first to the last of `sessions` every score uses (sorted
    by date and ticker), and how many of its other feature rows each reason left out (a
    session with no scored row at all included). `labelled` holds feature rows from the
    window on with their label; its latest date is the data's last session. `membership` (the
    point-in-time file's intervals, market.universe) leaves out the rows outside it."""
    frame, reasons, inside = _window_reasons(labelled, sessions, membership)
    rows = frame[inside & (reasons == "")].sort_values(["date", "ticker"], kind="stable")
    return rows.reset_index(drop=True), count_reasons(reasons[inside & (reasons != "")])


def window_exclusions(
    labelled: pd.DataFrame, sessions: pd.DatetimeIndex, membership: pd.DataFrame | None = None
) -> dict[str, int]:
    """`split_window`'s counts alone, without copying the rows."""
    _, reasons, inside = _window_reasons(labelled, sessions, membership)
    return count_reasons(reasons[inside & (reasons != "")])


def _window_reasons(
    labelled: pd.DataFrame, sessions: pd.DatetimeIndex, membership: pd.DataFrame | None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The rows sorted by ticker and date (not copied when they already are), each one's
    reason, and whether it lies in the window."""
    frame = labelled.reset_index(drop=True)
    keys = pd.MultiIndex.from_arrays([frame["ticker"], frame["date"]])
    if not keys.is_monotonic_increasing:
        frame = frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    reasons = exclusion_reasons(frame)
    reasons[~is_member(frame, membership)] = NOT_MEMBER
    if len(sessions) == 0:
        return frame, reasons, np.zeros(len(frame), dtype=bool)
    inside = frame["date"].between(sessions.min(), sessions.max()).to_numpy()
    return frame, reasons, inside


def count_reasons(reasons: np.ndarray) -> dict[str, int]:
    """How many rows each reason left out, in EXCLUSIONS order, reasons with none omitted."""
    counts = pd.Series(reasons).value_counts()
    return {reason: int(counts[reason]) for reason in EXCLUSIONS if reason in counts.index}


def describe_reasons(counts: dict[str, int]) -> str:
    """The counts as model_scores.excluded_reasons shows them: 'gap=3, no_features=40'."""
    return ", ".join(f"{reason}={n}" for reason, n in counts.items())


@dataclass(frozen=True)
class Comparison:
    """One one-sided test of the challenger against a reference: `statistic` is the t of the
    mean differential (negative favours the challenger), `p_value` the chance of one at least
    as favourable if the challenger were no better. NaN where it cannot be computed, and
    `note` says why."""

    statistic: float
    p_value: float
    sessions: int
    dof: int
    test: str
    note: str = ""
    lower_loss: bool = True
    """Whether the challenger's own loss on the window is below (1 - margin) times the
    reference's. A significant test implies it, except Clark and West's, which can find signal
    in a forecast whose estimation noise still makes its error larger: such a forecast is not
    served."""

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.p_value))

    def describe(self) -> str:
        if not self.defined:
            return self.note
        worse = "" if self.lower_loss else ", yet a larger squared error on the window"
        return f"t {self.statistic:.2f}, p {self.p_value:.3g}{worse}"


def ewc_test(differentials: np.ndarray) -> tuple[float, float, int]:
    """(t, one-sided p that the mean is below zero, degrees of freedom) of a series of
    per-session differentials, by the EWC long-run variance (see the module docstring)."""
    d = np.asarray(differentials, dtype="float64")
    t = len(d)
    cosines = max(_MIN_COSINES, int(_EWC_FACTOR * t ** (2 / 3)))
    if t < cosines + 1:
        return float("nan"), float("nan"), cosines
    mean = float(d.mean())
    if np.ptp(d) == 0:
        # Every differential the same (identical forecasts give zeros): no noise to measure
        # the mean against.
        if mean == 0:
            return 0.0, 1.0, cosines
        return float(np.copysign(np.inf, mean)), float(mean > 0), cosines
    times = (np.arange(1, t + 1) - 0.5) / t
    basis = np.sqrt(2 / t) * np.cos(np.pi * np.outer(np.arange(1, cosines + 1), times))
    variance = float(np.mean((basis @ (d - mean)) ** 2))
    statistic = mean / np.sqrt(variance / t)
    # scipy.stats takes half a second to import: the code location, which reads this module's
    # names, does not pay for it.
    from scipy import stats

    return float(statistic), float(stats.t.cdf(statistic, cosines)), cosines


def session_losses(target: str, rows: pd.DataFrame, forecast: pd.DataFrame) -> pd.Series:
    """A forecast's mean loss per session on `rows` (date, label, in the forecast's order): the
    squared return error, the mean pinball loss of the quantiles, the QLIKE of the variance, or
    1 - the session's rank IC (sessions without one are left out)."""
    if target == SCORE:
        label = rows[LABEL].to_numpy(dtype="float64")
        per_day = daily_correlations(rows["date"], forecast["score"].to_numpy(), label)
        return 1.0 - per_day["rank"]
    return pd.Series(row_losses(target, rows, forecast)).groupby(rows["date"].to_numpy()).mean()


def row_losses(target: str, rows: pd.DataFrame, forecast: pd.DataFrame) -> np.ndarray:
    """Each row's loss of a return, range or volatility forecast (see session_losses)."""
    label = rows[LABEL].to_numpy(dtype="float64")
    if target == RETURN:
        return (label - forecast["predicted_return"].to_numpy(dtype="float64")) ** 2
    if target == RANGE:
        return pinball_row_losses(label, forecast[RETURN_QUANTILE_COLUMNS].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        return qlike_row_losses(label, forecast["predicted_volatility"].to_numpy() ** 2)


def compare(
    target: str,
    rows: pd.DataFrame,
    challenger: pd.DataFrame,
    reference: pd.DataFrame,
    margin: float,
) -> Comparison:
    """The one-sided test that the challenger's loss is below (1 - margin) times the
    reference's, on the sessions both are scored on."""
    if target != SCORE:
        # A forecast with no finite loss on a row (a zero variance, say) cannot be averaged
        # over it: dropping the row would let the challenger skip the very rows it fails.
        undefined = int((~np.isfinite(row_losses(target, rows, challenger))).sum())
        if undefined:
            note = f"the challenger's forecast has no finite loss on {undefined} rows"
            return Comparison(float("nan"), float("nan"), 0, 0, "ewc", note)
    ours = session_losses(target, rows, challenger)
    theirs = session_losses(target, rows, reference)
    empty = "no session scored"
    if target == SCORE:
        empty = "no session has a score from both (a score ranks at least 10 tickers a session)"
    forecast = challenger.get("predicted_return")
    given = reference.get("predicted_return")
    if target != RETURN or given is None or np.any(given.to_numpy(dtype="float64")):
        return compare_sessions(ours, theirs, margin, "ewc", empty)
    gap = (forecast.to_numpy(dtype="float64") - given.to_numpy(dtype="float64")) ** 2
    adjustment = pd.Series(gap).groupby(rows["date"].to_numpy()).mean()
    tested = compare_sessions(ours - adjustment, theirs, margin, "clark-west, ewc", empty)
    plain = compare_sessions(ours, theirs, margin, "ewc", empty)
    return replace(tested, lower_loss=plain.lower_loss)


def compare_sessions(
    ours: pd.Series, theirs: pd.Series, margin: float, test: str = "ewc", empty: str = ""
) -> Comparison:
    """The one-sided test on per-session losses (indexed by session) of the challenger and a
    reference, on the sessions both have: `empty` says why there is none."""
    both = pd.concat([ours, theirs], axis=1, keys=["ours", "theirs"]).dropna()
    if len(both) == 0:
        return Comparison(float("nan"), float("nan"), 0, 0, test, empty or "no session scored")
    d = both["ours"].to_numpy() - (1 - margin) * both["theirs"].to_numpy()
    statistic, p_value, dof = ewc_test(d)
    note = "" if np.isfinite(p_value) else f"{len(both)} sessions are too few to test"
    lower = bool(d.mean() < 0)
    return Comparison(statistic, p_value, len(both), dof, f"{test} t({dof})", note, lower)


def promotions(
    comparisons: dict[str, dict[str, Comparison]], level: float
) -> dict[str, tuple[bool, float]]:
    """Per target, (promote, adjusted p-value): the challenger must beat every reference, so a
    target's p-value is the larger of its tests' (an intersection-union test), and these are
    Holm-adjusted across the targets whose tests are all defined (the others: NaN, refused).
    A target is promoted where that is at most `level` and the challenger's own loss is the
    lower against every reference."""
    worst = {
        target: max(c.p_value for c in tests.values())
        if tests and all(c.defined for c in tests.values())
        else float("nan")
        for target, tests in comparisons.items()
    }
    adjusted = holm_adjusted(worst)
    return {
        target: (bool(p <= level) and all(c.lower_loss for c in comparisons[target].values()), p)
        for target, p in adjusted.items()
    }


def holm_adjusted(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values of the defined ones (a NaN stays NaN): a hypothesis
    is rejected at level a where its adjusted p-value is at most a, and the chance of
    rejecting any true one is at most a."""
    defined = sorted((p, name) for name, p in p_values.items() if np.isfinite(p))
    adjusted, running = {}, 0.0
    for i, (p, name) in enumerate(defined):
        running = max(running, min(1.0, (len(defined) - i) * p))
        adjusted[name] = running
    return {name: adjusted.get(name, float("nan")) for name in p_values}
