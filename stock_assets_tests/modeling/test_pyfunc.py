"""The served model's logic: raw bars in, one next-session forecast per ticker out."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling.forecast import Forecaster
from stock_assets.modeling.pyfunc import InvalidBarsError, predict_from_bars
from stock_assets.modeling.requests import to_model_input


def test_persistence_predicts_todays_close_for_the_next_session(sample_bars):
    bars = to_model_input(sample_bars[sample_bars["date"] <= "2004-07-02"])
    predictions = predict_from_bars(Forecaster(), bars)
    assert sorted(predictions["ticker"]) == ["AAPL", "IBM", "MSFT"]
    assert set(predictions["as_of_date"]) == {"2004-07-02"}
    # Monday 2004-07-05 was Independence Day observed: the next session is Tuesday.
    assert set(predictions["target_date"]) == {"2004-07-06"}
    last = sample_bars[sample_bars["date"] == "2004-07-02"].set_index("ticker")["close"]
    assert dict(zip(predictions["ticker"], predictions["predicted_close"])) == {
        ticker: last[ticker] for ticker in predictions["ticker"]
    }
    assert (predictions["predicted_return"] == 0).all()


def test_all_dates_gives_a_row_per_bar_with_enough_history(sample_bars):
    bars = to_model_input(sample_bars[sample_bars["ticker"] == "IBM"].head(100))
    predictions = predict_from_bars(Forecaster(), bars, all_dates=True)
    assert len(predictions) == 100 - 61
    assert predictions["as_of_date"].is_monotonic_increasing


def test_too_little_history_is_a_clear_error(sample_bars):
    bars = to_model_input(sample_bars[sample_bars["ticker"] == "IBM"].head(20))
    with pytest.raises(InvalidBarsError, match="enough history"):
        predict_from_bars(Forecaster(), bars)


def test_missing_column_is_a_clear_error(sample_bars):
    bars = to_model_input(sample_bars.head(100)).drop(columns="volume")
    with pytest.raises(InvalidBarsError, match="column 'volume' missing"):
        predict_from_bars(Forecaster(), bars)


def test_the_score_needs_enough_tickers_and_the_other_targets_do_not_care():
    from stock_assets.features.cross_section import MIN_SCORE_TICKERS, cross_sectional_features
    from stock_assets.features.indicators import LABEL, build_features
    from stock_assets.market.cleaning import clean_bars
    from stock_assets.market.synthetic import planted_signal_market
    from stock_assets.modeling.forecast import FORECAST_COLUMNS
    from stock_assets.modeling.zoo import RidgeScore

    raw = planted_signal_market(n_tickers=12, sessions=200, ic=0.1, seed=4)
    features = build_features(clean_bars(raw, sorted(raw["ticker"].unique()), "s").cleaned)
    rows = features.dropna()
    model = RidgeScore(10.0).fit(
        pd.concat([rows, cross_sectional_features(rows)], axis=1), rows[LABEL]
    )
    forecaster = Forecaster({"score": model}, {"score": "ridge_score"})
    bars = to_model_input(raw)

    universe = predict_from_bars(forecaster, bars)
    assert len(universe) == 12 >= MIN_SCORE_TICKERS
    assert universe["score"].notna().all() and (universe["score_note"] == "").all()
    assert universe["score"].nunique() == 12

    few = predict_from_bars(forecaster, bars[bars["ticker"].isin(universe["ticker"][:3])])
    assert few["score"].isna().all()
    assert few["score_note"].str.contains(f"at least {MIN_SCORE_TICKERS} tickers").all()
    assert few["score_note"].str.contains("has 3 on").all()

    # The other targets read one ticker's own bars only: alone or in the universe, the same.
    one = predict_from_bars(forecaster, bars[bars["ticker"] == universe["ticker"].iloc[0]])
    others = [c for c in FORECAST_COLUMNS if c != "score"]
    np.testing.assert_allclose(
        one[others].to_numpy(dtype="float64"),
        universe[others].head(1).to_numpy(dtype="float64"),
        rtol=1e-9,
    )
