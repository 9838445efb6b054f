"""The served model's logic: raw bars in, one next-session forecast per ticker out."""

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
