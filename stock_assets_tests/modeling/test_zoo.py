"""The model zoo: its members, their bounded search inside a training window."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.features.indicators import FEATURE_COLUMNS
from stock_assets.modeling import zoo
from stock_assets.modeling.zoo import Member, RidgeReturn


def test_ridge_return_matches_scikit_learns_standardised_ridge():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(9)
    rows = pd.DataFrame(rng.normal(size=(500, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    rows[FEATURE_COLUMNS[0]] *= 1e-3
    label = pd.Series(0.01 * rows[FEATURE_COLUMNS[1]] + rng.normal(0, 0.02, 500))
    for alpha in (1.0, 100.0):
        ours = RidgeReturn(alpha).fit(rows, label).predict_return(rows)
        theirs = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(rows, label).predict(rows)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_fitting_every_alpha_at_once_equals_fitting_each_alone():
    rng = np.random.default_rng(2)
    rows = pd.DataFrame(rng.normal(size=(300, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    rows.iloc[::7, 3] = np.nan  # rows a column cannot describe are left out alike
    label = pd.Series(0.01 * rows[FEATURE_COLUMNS[1]] + rng.normal(0, 0.02, 300))
    together = RidgeReturn.fit_alphas(zoo.RIDGE_ALPHAS, rows, label)
    clean = rows.fillna(0.0)
    for alpha, model in zip(zoo.RIDGE_ALPHAS, together, strict=True):
        alone = RidgeReturn(alpha).fit(rows, label)
        assert model.alpha == alpha
        np.testing.assert_array_equal(model.predict(clean), alone.predict(clean))


def test_the_search_chooses_inside_the_window_and_is_bounded():
    rng = np.random.default_rng(4)
    dates = pd.bdate_range("2020-01-01", periods=400)
    rows = pd.DataFrame(rng.normal(size=(400, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    rows["date"], rows["close"] = dates, 100.0
    # A strong signal in one feature: light regularisation fits it, heavy shrinks it away.
    label = pd.Series(0.02 * rows[FEATURE_COLUMNS[2]] + rng.normal(0, 0.005, 400))
    member = Member("ridge", "return", (0.1, 1e6), RidgeReturn)
    assert zoo.choose(member, rows, label) == 0.1
    # Pure noise: fitting it only hurts on the window's latest sessions, so heavy shrinkage wins.
    noise = pd.Series(rng.normal(0, 0.02, 400))
    config, model = zoo.fit(member, rows, noise)
    assert config == 1e6 and model.alpha == 1e6
    with pytest.raises(ValueError, match="between 1 and 8"):
        Member("too_many", "return", tuple(range(9)), RidgeReturn)
    assert all(1 <= len(m.configs) <= zoo.MAX_CONFIGS for m in zoo.ZOO)


def _rows(n_dates: int, n_tickers: int, seed: int) -> pd.DataFrame:
    """Random feature rows, n_tickers a date, with the columns every member reads."""
    from stock_assets.features.cross_section import SCORE_COLUMNS

    rng = np.random.default_rng(seed)
    columns = list(dict.fromkeys([*FEATURE_COLUMNS, *SCORE_COLUMNS]))
    rows = pd.DataFrame(rng.normal(size=(n_dates * n_tickers, len(columns))), columns=columns)
    rows["date"] = np.repeat(pd.bdate_range("2020-01-01", periods=n_dates), n_tickers)
    rows["ticker"] = np.tile([f"T{i:02d}" for i in range(n_tickers)], n_dates)
    rows["close"] = 100.0
    # One block per type: the tests add columns one by one after this.
    return rows.copy()


def test_lightgbm_learns_a_nonlinear_return_ridge_cannot():
    rows = _rows(500, 10, seed=1)
    x = rows[FEATURE_COLUMNS[0]]
    # Far moves either way come before a rise: no linear trace, plain for a tree.
    rows["label"] = 0.01 * (x**2 - 1) + np.random.default_rng(2).normal(0, 0.02, len(rows))
    train = (rows["date"] < rows["date"].unique()[400]).to_numpy()

    def r_squared(name: str) -> float:
        member = next(m for m in zoo.ZOO if m.name == name)
        _, model = zoo.fit(member, rows[train], rows.loc[train, "label"])
        error = rows.loc[~train, "label"] - model.predict_return(rows[~train])
        return 1 - error.var() / rows.loc[~train, "label"].var()

    assert r_squared("lightgbm") > 0.15
    assert r_squared("ridge") < 0.02


def test_lightgbm_score_ranks_a_nonlinear_signal_and_skips_rows_it_cannot_read():
    from stock_assets.features.cross_section import RANK_COLUMNS
    from stock_assets.modeling.targets import ranking_scores

    rows = _rows(150, 40, seed=3)
    rng = np.random.default_rng(4)
    ranks = rng.uniform(-0.5, 0.5, (len(rows), len(RANK_COLUMNS)))
    rows = pd.concat(
        [
            rows.drop(columns=RANK_COLUMNS, errors="ignore"),
            pd.DataFrame(ranks, columns=RANK_COLUMNS),
        ],
        axis=1,
    ).copy()
    # The extremes of a feature's ranking do better than its middle: no linear trace.
    signal = np.abs(rows[RANK_COLUMNS[0]]) - 0.25
    rows["label"] = 0.05 * signal + rng.normal(0, 0.01, len(rows))
    # A date with too few tickers to rank: every rank NaN, as cross_sectional_features gives.
    unranked = (rows["date"] == rows["date"].unique()[10]).to_numpy()
    rows.loc[unranked, RANK_COLUMNS] = np.nan
    train = (rows["date"] < rows["date"].unique()[100]).to_numpy()
    test = rows[~train]

    def rank_ic(name: str) -> float:
        member = next(m for m in zoo.ZOO if m.name == name)
        _, model = zoo.fit(member, rows[train], rows.loc[train, "label"])
        assert np.isnan(model.predict_score(rows[unranked])).all()
        return ranking_scores(test["date"], model.predict_score(test), test["label"])["ic"]

    assert rank_ic("lightgbm_score") > 0.3
    assert abs(rank_ic("ridge_score")) < 0.05


def test_lightgbm_refits_the_same_and_skips_rows_without_a_label():
    import pickle

    from stock_assets.modeling.zoo import TREE_CONFIG, LightGBMReturn

    rows = _rows(200, 10, seed=5)
    rows["label"] = 0.01 * rows[FEATURE_COLUMNS[1]] + np.random.default_rng(6).normal(0, 0.02, 2000)
    rows.loc[rows.index[:7], "label"] = np.nan  # unlabelled rows teach nothing
    label = rows["label"]
    first = LightGBMReturn(TREE_CONFIG).fit(rows, label)
    assert first.rows == 1993
    # Deterministic (its row and feature draws are seeded): a refit, or the model unpickled as
    # a served version holds it, agrees.
    again = LightGBMReturn(TREE_CONFIG).fit(rows, label)
    np.testing.assert_array_equal(first.predict_return(rows), again.predict_return(rows))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(first.predict_return(rows), restored.predict_return(rows))


def test_a_member_that_cannot_train_says_why():
    from stock_assets.features.cross_section import RANK_COLUMNS
    from stock_assets.modeling.zoo import TREE_CONFIG, LightGBMScore

    rows = _rows(50, 5, seed=8)
    rows[RANK_COLUMNS] = np.nan  # five tickers are too few to rank
    with pytest.raises(ValueError, match="LightGBMScore: 0 usable rows"):
        LightGBMScore(TREE_CONFIG).fit(rows, rows["ret_1d"])


def test_quantile_trees_learn_tails_that_depend_on_the_state():
    """After a fall the next return spreads three times as wide as after a rise. Filtered
    historical simulation gives every row the same standardised tails; the quantile trees read
    the fall and come close to the known quantiles."""
    from statistics import NormalDist

    from stock_assets.modeling.targets import QUANTILES, range_scores

    n = 60_000
    rng = np.random.default_rng(11)
    vol = rng.uniform(0.01, 0.03, n)
    rows = pd.DataFrame({"date": np.repeat(pd.bdate_range("2015-01-01", periods=600), 100)})
    for column in ("vol_5", "vol_20", "vol_60"):
        rows[column] = vol
    for column in ("parkinson_1", "parkinson_5", "parkinson_20"):
        rows[column] = vol**2
    rows["ret_1d"] = vol * rng.standard_normal(n)
    rows["ret_5d"], rows["ret_20d"] = rows["ret_1d"], 0.0
    rows["rsv_20"], rows["volume_z_20"] = 0.5, 0.0
    spread = vol * np.where(rows["ret_1d"] < 0, 1.5, 0.5)
    label = pd.Series(spread * rng.standard_normal(n))
    rows.loc[rows.index[-3:], "vol_5"] = np.nan  # rows an input cannot describe
    test = (rows["date"] >= rows["date"].unique()[400]).to_numpy()
    kept = test & rows["vol_5"].notna().to_numpy()

    def pinball(name: str) -> float:
        member = next(m for m in zoo.ZOO if m.name == name)
        _, model = zoo.fit(member, rows[~test], label[~test])
        quantiles = model.predict_quantiles(rows[test])
        assert np.isnan(quantiles[-3:]).all()
        assert (np.diff(quantiles[:-3], axis=1) >= 0).all()  # never crossing
        return range_scores(label[kept].to_numpy(), quantiles[:-3])["pinball"]

    z = np.array([NormalDist().inv_cdf(q) for q in QUANTILES])
    known = range_scores(label[kept].to_numpy(), spread[kept][:, None] * z)["pinball"]
    trees, filtered = pinball("lightgbm_quantiles"), pinball("har_filtered_quantiles")
    assert trees < 0.92 * filtered
    assert trees < 1.03 * known
