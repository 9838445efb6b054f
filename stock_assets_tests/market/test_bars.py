"""Parsing what a source delivers: structural faults raise, row faults are set aside."""

import pandas as pd
import pytest

from stock_assets.market.bars import BAR_COLUMNS, StructuralError, parse_bars
from stock_assets.market.sources import history_files, read_history_file


def test_missing_column_names_source_column_and_expectation():
    frame = pd.DataFrame({"ticker": ["AAPL"], "date": ["2010-01-04"], "open": [1], "high": [1]})
    with pytest.raises(StructuralError) as raised:
        parse_bars(frame, "s3://prices/history/AAPL.csv")
    message = str(raised.value)
    assert message.startswith("s3://prices/history/AAPL.csv: column 'low', 'close', 'volume'")
    assert "found: ticker, date, open, high" in message


def test_header_variants_are_understood():
    frame = pd.DataFrame(
        {
            "Symbol": ["aapl"],
            "Date": ["2010-01-04"],
            "Open": ["1.0"],
            "High": ["2"],
            "Low": ["0.5"],
            "Close": ["1.5"],
            "Volume": ["100"],
            "Adj Close": ["1.4"],
        }
    )
    bars, rejected = parse_bars(frame, "file.csv")
    assert list(bars.columns) == BAR_COLUMNS
    assert bars.loc[0, "ticker"] == "AAPL"
    assert bars.loc[0, "date"] == pd.Timestamp("2010-01-04")
    assert bars.loc[0, "close"] == 1.5
    assert rejected.empty


def test_unparseable_rows_are_set_aside_with_reason_and_the_rest_goes_on():
    frame = pd.DataFrame(
        {
            "ticker": ["AAPL", "MSFT", "IBM"],
            "date": ["2010-01-04", "not a date", "2010-01-04"],
            "open": ["1", "1", "abc"],
            "high": ["1", "1", "1"],
            "low": ["1", "1", "1"],
            "close": ["1", "1", "1"],
            "volume": ["1", "1", "1"],
        }
    )
    bars, rejected = parse_bars(frame, "feed")
    assert bars["ticker"].tolist() == ["AAPL"]
    assert rejected["ticker"].tolist() == ["MSFT", "IBM"]
    assert rejected["reason"].tolist() == ["unparseable: date", "unparseable: open"]
    assert set(rejected["source"]) == {"feed"}
    assert rejected.loc[1, "open"] == "abc"


def test_no_rows_set_aside_are_typed_as_rows_set_aside():
    """The shortcut for a clean batch gives what setting rows aside gives, with no rows."""
    from stock_assets.market.cleaning import to_rejects

    frame = pd.DataFrame({c: ["1"] for c in BAR_COLUMNS} | {"ticker": ["AAPL"], "date": ["x"]})
    _, some = parse_bars(frame, "feed")
    _, none = parse_bars(frame.assign(date="2010-01-04"), "feed")
    pd.testing.assert_frame_equal(none, some.iloc[0:0].reset_index(drop=True))
    bars = parse_bars(frame.assign(date="2010-01-04"), "feed")[0]
    pd.testing.assert_frame_equal(to_rejects(bars.iloc[0:0], "r", "s"), none)
    pd.testing.assert_frame_equal(to_rejects(bars, "r", "s").iloc[0:0], none)


def test_corrupt_file_is_a_structural_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(StructuralError, match=r"broken\.parquet: cannot be read"):
        read_history_file(path)


def test_folder_without_history_files_says_how_to_fix(tmp_path):
    with pytest.raises(StructuralError, match="STOCK_ASSETS_SOURCE_PATH"):
        history_files(tmp_path)
