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
