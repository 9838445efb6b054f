"""The model zoo: every model the walk-forward frame tries for each target, the configurations
its search may choose from, and the loss it is chosen on.

Adding a model is one `Member`: a name, its target, at most MAX_CONFIGS configurations, and a
builder returning an object with `fit(rows, label)` and the target's predict method
(`predict_return`, `predict_variance` or `predict_quantiles`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stock_assets.features.cross_section import SCORE_COLUMNS
from stock_assets.features.indicators import FEATURE_COLUMNS
from stock_assets.features.news import NEWS_FEATURE_COLUMNS
from stock_assets.modeling.targets import (
    QUANTILES,
    RANGE,
    RETURN,
    SCORE,
    VOLATILITY,
    range_scores,
    ranking_scores,
    volatility_scores,
)
from stock_assets.modeling.volatility import (
    HAR_CONFIGS,
    HAR_INPUTS,
    FilteredQuantiles,
    HarVolatility,
)

MAX_CONFIGS = 8
# The share of a training window's latest sessions the search validates on.
VALIDATION_SHARE = 0.2


class LinearRidge:
    """Ridge regression on standardised columns with an unpenalised intercept, as
    scikit-learn's StandardScaler + Ridge computes it, in a few NumPy calls: the search fits it
    dozens of times per training."""

    columns: list[str] = []

    def __init__(self, alpha: float = 100.0) -> None:
        self.alpha = alpha
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coefficients: np.ndarray | None = None
        self.intercept = 0.0

    def fit(self, rows: pd.DataFrame, label: pd.Series) -> LinearRidge:
        return self._solve(self._moments(rows, label))

    @classmethod
    def fit_alphas(
        cls, alphas: tuple[float, ...], rows: pd.DataFrame, label: pd.Series
    ) -> list[LinearRidge]:
        """One model per alpha: the pass over the rows, which costs far more than solving, is
        the same for every alpha, so it is made once."""
        moments = cls()._moments(rows, label)
        return [cls(alpha)._solve(moments) for alpha in alphas]

    def _label(self, rows: pd.DataFrame, label: pd.Series) -> pd.Series:
        return label

    def _moments(self, rows: pd.DataFrame, label: pd.Series) -> tuple[np.ndarray, ...]:
        x = rows[self.columns].to_numpy(dtype="float64", copy=True)
        y = self._label(rows, label).to_numpy(dtype="float64")
        # Rows a column cannot describe (a universe too small to rank) teach nothing.
        usable = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if not usable.all():
            x, y = x[usable], y[usable]
        if len(y) <= x.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: {len(y)} usable rows for {x.shape[1]} columns"
            )
        mean = x.mean(axis=0)
        x -= mean
        # The standardised columns' Gram matrix, from the centred one: one pass over the rows.
        gram = x.T @ x
        std = np.sqrt(np.diag(gram) / len(x))
        scale = np.where(std > 0, std, 1.0)
        gram /= np.outer(scale, scale)
        intercept = y.mean()
        moment = (x.T @ (y - intercept)) / scale
        return mean, scale, gram, np.array(intercept), moment

    def _solve(self, moments: tuple[np.ndarray, ...]) -> LinearRidge:
        self.mean, self.scale, gram, intercept, moment = moments
        self.intercept = float(intercept)
        self.coefficients = np.linalg.solve(gram + self.alpha * np.eye(len(gram)), moment)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.coefficients is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit first")
        x = rows[self.columns].to_numpy(dtype="float64")
        return ((x - self.mean) / self.scale) @ self.coefficients + self.intercept

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha!r})"


class RidgeReturn(LinearRidge):
    """The next-session return from the unit-free features: next-day returns leave little
    signal to fit, and a regularised linear model does not invent any."""

    columns = FEATURE_COLUMNS

    def predict_return(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict(rows)


class RidgeReturnWithNews(RidgeReturn):
    """The ridge return member reading each ticker's news too (`features.news`): trained only
    where news has landed, and chosen only if it forecasts better walk-forward."""

    columns = [*FEATURE_COLUMNS, *NEWS_FEATURE_COLUMNS]


class RidgeScore(LinearRidge):
    """The next-session return's rank in the universe from the cross-sectional features."""

    columns = SCORE_COLUMNS

    def _label(self, rows: pd.DataFrame, label: pd.Series) -> pd.Series:
        return date_ranks(rows, label)

    def predict_score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict(rows)


def date_ranks(rows: pd.DataFrame, label: pd.Series) -> pd.Series:
    """The label as a centred rank in its date's universe, what the score's members fit:
    ranks, not returns, so a few extreme days do not decide the ranking."""
    return label.groupby(rows["date"].to_numpy()).rank(pct=True) - 0.5


TREES = 100
LEARNING_RATE = 0.05
# Each tree learns from half the rows and half the features, drawn anew per tree (stochastic
# gradient boosting): on noisy labels that regularises, and it halves the cost of a tree.
ROW_SHARE = FEATURE_SHARE = 0.5
# Fixed, so that a refit grows the same trees; one, because on two cores two threads ran
# several times slower than one whenever anything else was running.
TREE_THREADS = 1
# Bin edges from a sample of 20,000 rows, not LightGBM's 200,000: binning a 100,000-row window
# takes half the time, and 20,000 rows place 255 quantile edges well enough.
BIN_SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class TreeConfig:
    leaves: int  # at most, per tree
    min_leaf_rows: int  # the fewest training rows a leaf may hold: the main regulariser
    trees: int = TREES
    learning_rate: float = LEARNING_RATE


def _grow(config: TreeConfig, data: Any, objective: dict[str, Any]) -> Any:
    """A LightGBM booster on `data` (rows and label), with the zoo's shared settings."""
    import lightgbm  # its import takes seconds; light commands never fit a model

    params = {
        **objective,
        "learning_rate": config.learning_rate,
        "num_leaves": config.leaves,
        "min_data_in_leaf": config.min_leaf_rows,
        "bagging_fraction": ROW_SHARE,
        "bagging_freq": 1,
        "feature_fraction": FEATURE_SHARE,
        "bin_construct_sample_cnt": BIN_SAMPLE_ROWS,
        "num_threads": TREE_THREADS,
        "seed": 0,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    return lightgbm.train(params, data, num_boost_round=config.trees)


def _dataset(x: np.ndarray, y: np.ndarray) -> Any:
    import lightgbm

    # Kept after binning, so that several boosters can be grown on the same bins.
    return lightgbm.Dataset(x, y, params={"verbose": -1}, free_raw_data=False)


class LightGBM:
    """Gradient-boosted trees (LightGBM; faster than scikit-learn's HistGradientBoosting at the
    same skill, see benchmarks/gbm.py) of the label on `columns`: they fit thresholds and
    interactions a linear model cannot, at the price of more variance. Deterministic: a fixed
    seed and thread count, LightGBM's deterministic mode. Training time grows with the rows;
    the walk-forward frame bounds them (`training.MAX_TRAINING_ROWS`)."""

    columns: list[str] = []

    def __init__(self, config: TreeConfig) -> None:
        self.config = config
        self.booster: Any = None
        self.rows = 0  # the rows the trees were fitted on

    def _label(self, rows: pd.DataFrame, label: pd.Series) -> pd.Series:
        return label

    def fit(self, rows: pd.DataFrame, label: pd.Series) -> LightGBM:
        # The features are float32: passed as they are, not widened, they grow the same trees.
        x = rows[self.columns].to_numpy(dtype="float32")
        y = self._label(rows, label).to_numpy(dtype="float64")
        # Rows a column cannot describe (a universe too small to rank) teach nothing.
        usable = np.isfinite(x).all(axis=1) & np.isfinite(y)
        x, y = x[usable], y[usable]
        if len(y) <= x.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: {len(y)} usable rows for {x.shape[1]} columns"
            )
        self.booster = _grow(self.config, _dataset(x, y), {"objective": "regression"})
        self.rows = len(y)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.booster is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit first")
        x = rows[self.columns].to_numpy(dtype="float32")
        predicted = self.booster.predict(x, num_threads=TREE_THREADS)
        # As the ridge members: a row a column cannot describe gets no forecast.
        return np.where(np.isfinite(x).all(axis=1), predicted, np.nan)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class LightGBMReturn(LightGBM):
    """The next-session return from the unit-free features."""

    columns = FEATURE_COLUMNS

    def predict_return(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict(rows)


class LightGBMScore(LightGBM):
    """The next-session return's rank in the universe from the cross-sectional features."""

    columns = SCORE_COLUMNS

    def _label(self, rows: pd.DataFrame, label: pd.Series) -> pd.Series:
        return date_ranks(rows, label)

    def predict_score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict(rows)


# The most rows the quantile trees learn from: each quantile's trees cost as much as the
# return's, and five of them on a whole window would double the zoo's training time.
QUANTILE_TREE_ROWS = 25_000


class LightGBMQuantiles:
    """Return quantiles from quantile-loss trees, one per quantile, of the return standardised
    by the HAR volatility forecast. Filtered historical simulation gives every row the same
    standardised tails; the trees let their width and skew depend on the state a ticker is in
    (the last days' standardised moves, where the price sits in its range, volume, and each
    HAR input against the monthly variance), from per-ticker inputs only."""

    # Unit-free per-ticker features beside the HAR ratios (see `_inputs`).
    columns = ["vol_20", "ret_20d", "rsv_20", "volume_z_20"]

    def __init__(self, config: TreeConfig) -> None:
        self.config = config
        self.volatility = HarVolatility()
        self.boosters: list[Any] = []

    def _inputs(self, rows: pd.DataFrame) -> np.ndarray:
        monthly = HAR_INPUTS["monthly"](rows)
        ratios = [HAR_INPUTS[name](rows) / monthly for name in HAR_INPUTS if name != "monthly"]
        moves = [rows["ret_1d"] / rows["vol_20"], rows["ret_5d"] / rows["vol_20"]]
        return np.column_stack([*ratios, *moves, *(rows[c] for c in self.columns)]).astype(
            "float32"
        )

    def fit(self, rows: pd.DataFrame, label: pd.Series) -> LightGBMQuantiles:
        sigma = np.sqrt(self.volatility.fit(rows, label).predict_variance(rows))
        x, z = self._inputs(rows), label.to_numpy(dtype="float64") / sigma
        usable = np.flatnonzero(np.isfinite(x).all(axis=1) & np.isfinite(z))
        if len(usable) <= x.shape[1]:
            raise ValueError(f"LightGBMQuantiles: {len(usable)} usable rows")
        # Every k-th row, so that every session and ticker of the window stays in the sample.
        usable = usable[:: -(-len(usable) // QUANTILE_TREE_ROWS)]
        data = _dataset(x[usable], z[usable])
        self.boosters = [
            _grow(self.config, data, {"objective": "quantile", "alpha": q}) for q in QUANTILES
        ]
        return self

    def predict_quantiles(self, rows: pd.DataFrame) -> np.ndarray:
        if not self.boosters:
            raise ValueError("LightGBMQuantiles is not fitted: call fit first")
        x = self._inputs(rows)
        z = np.column_stack([b.predict(x, num_threads=TREE_THREADS) for b in self.boosters])
        # Quantiles fitted apart can cross; sorting each row's restores their order and never
        # raises the pinball loss (Chernozhukov, Fernandez-Val and Galichon 2010).
        z = np.sort(z, axis=1)
        sigma = np.sqrt(self.volatility.predict_variance(rows))
        return np.where(np.isfinite(x).all(axis=1)[:, None], z * sigma[:, None], np.nan)

    def __repr__(self) -> str:
        return f"LightGBMQuantiles({self.config!r})"


def return_loss(model: Any, rows: pd.DataFrame, label: pd.Series) -> float:
    """Squared error of the return, in price terms (as the gate's price RMSE weighs it)."""
    error = rows["close"].to_numpy() * (model.predict_return(rows) - label.to_numpy())
    return float(np.mean(error**2))


def variance_loss(model: Any, rows: pd.DataFrame, label: pd.Series) -> float:
    return volatility_scores(label.to_numpy(), model.predict_variance(rows))["qlike"]


def quantile_loss(model: Any, rows: pd.DataFrame, label: pd.Series) -> float:
    return range_scores(label.to_numpy(), model.predict_quantiles(rows))["pinball"]


def score_loss(model: Any, rows: pd.DataFrame, label: pd.Series) -> float:
    """Minus the mean daily rank IC: the higher the IC, the lower the loss."""
    ic = ranking_scores(rows["date"], model.predict_score(rows), label.to_numpy())["ic"]
    return -ic if np.isfinite(ic) else float("inf")


# What the search and the choice between members minimise, per target: the gate's loss.
LOSSES: dict[str, Callable[[Any, pd.DataFrame, pd.Series], float]] = {
    RETURN: return_loss,
    VOLATILITY: variance_loss,
    RANGE: quantile_loss,
    SCORE: score_loss,
}


@dataclass(frozen=True)
class Member:
    name: str
    target: str
    configs: tuple[Any, ...]
    build: Callable[[Any], Any]
    # Fits every configuration on the same rows at once, where that is cheaper than one by one.
    fit_configs: Callable[[tuple[Any, ...], pd.DataFrame, pd.Series], list[Any]] | None = None
    # Reads the news columns: trained only when the features carry news.
    reads_news: bool = False

    def fit_each(self, rows: pd.DataFrame, label: pd.Series) -> list[Any]:
        """One model per configuration, each fitted on these rows."""
        if self.fit_configs is not None:
            return self.fit_configs(self.configs, rows, label)
        return [self.build(config).fit(rows, label) for config in self.configs]

    def __post_init__(self) -> None:
        if not 1 <= len(self.configs) <= MAX_CONFIGS:
            raise ValueError(
                f"zoo member {self.name!r}: {len(self.configs)} configurations; the search "
                f"tries between 1 and {MAX_CONFIGS} per target and window"
            )


RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1000.0)
# One configuration, no search: the trees are the zoo's costliest members by far (a 100,000-row
# window takes seconds per fit, where a ridge takes milliseconds), and a search of two would
# triple their cost: two fits on the window's earlier sessions, then the chosen one on all.
# Heavily regularised: next-session labels are mostly noise.
TREE_CONFIG = TreeConfig(leaves=15, min_leaf_rows=300)
QUANTILE_TREE_CONFIG = TreeConfig(leaves=7, min_leaf_rows=1000, trees=50, learning_rate=0.1)
ZOO: tuple[Member, ...] = (
    Member("ridge", RETURN, RIDGE_ALPHAS, RidgeReturn, RidgeReturn.fit_alphas),
    Member("lightgbm", RETURN, (TREE_CONFIG,), LightGBMReturn),
    Member(
        "ridge_news",
        RETURN,
        RIDGE_ALPHAS,
        RidgeReturnWithNews,
        RidgeReturnWithNews.fit_alphas,
        reads_news=True,
    ),
    Member("ridge_score", SCORE, RIDGE_ALPHAS, RidgeScore, RidgeScore.fit_alphas),
    Member("lightgbm_score", SCORE, (TREE_CONFIG,), LightGBMScore),
    Member("har", VOLATILITY, HAR_CONFIGS, HarVolatility),
    Member(
        "har_filtered_quantiles",
        RANGE,
        HAR_CONFIGS,
        lambda inputs: FilteredQuantiles(HarVolatility(inputs)),
    ),
    Member("lightgbm_quantiles", RANGE, (QUANTILE_TREE_CONFIG,), LightGBMQuantiles),
)


def zoo_for(features: pd.DataFrame) -> tuple[Member, ...]:
    """The members that can learn from these features: those reading news only when some
    row has news."""
    has_news = "news_count_log" in features and bool((features["news_count_log"] > 0).any())
    return tuple(m for m in ZOO if has_news or not m.reads_news)


def choose(member: Member, rows: pd.DataFrame, label: pd.Series) -> Any:
    """The configuration whose model, fitted on a training window's earlier sessions, has the
    lowest loss on its latest VALIDATION_SHARE: nothing outside the window is looked at."""
    if len(member.configs) == 1:
        return member.configs[0]
    sessions = np.sort(rows["date"].unique())
    split = sessions[int(len(sessions) * (1 - VALIDATION_SHARE))]
    early = (rows["date"] < split).to_numpy()
    # Split once: copying a large window's rows costs more than fitting a linear model on them.
    fit_rows, fit_label = rows[early], label[early]
    check_rows, check_label = rows[~early], label[~early]
    loss = LOSSES[member.target]
    losses = [
        loss(model, check_rows, check_label) for model in member.fit_each(fit_rows, fit_label)
    ]
    return member.configs[int(np.nanargmin(losses))]


def fit(member: Member, rows: pd.DataFrame, label: pd.Series) -> tuple[Any, Any]:
    """The member's configuration chosen inside these rows, and its model fitted on them all."""
    config = choose(member, rows, label)
    return config, member.build(config).fit(rows, label)
