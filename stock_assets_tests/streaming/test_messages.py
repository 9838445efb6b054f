"""The bar message contract: validation, the published schema, dedupe and daily rollup."""

import json
from pathlib import Path

import jsonschema
import orjson
import pandas as pd
import pytest

from stock_assets.streaming.messages import (
    Invalid,
    _check_fields,
    _fields_pass,
    check_batch,
    daily_bars,
    landed_frame,
    with_landed,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UNIVERSE = frozenset({"AAPL", "MSFT"})
FIRST = pd.Timestamp("2000-03-01")
NOW = pd.Timestamp("2013-03-05T12:00:00Z")


def validate_batch(bodies: list[bytes], *args) -> list[dict | Invalid]:
    """`check_batch`'s answer as one record (with its trading date) or reason per message."""
    valid, invalid = check_batch(bodies, *args)
    checked: list[dict | Invalid] = list(range(len(bodies)))  # type: ignore[arg-type]
    for at, reason in invalid.items():
        checked[at] = reason
    for record in valid.to_dict("records"):
        checked[record.pop("at")] = record
    return checked


def validate(body: bytes, *args) -> dict | Invalid:
    """One message checked alone."""
    return validate_batch([body], *args)[0]


def message(**fields) -> dict:
    base = {
        "v": 1,
        "ticker": "AAPL",
        "ts": "2013-03-04T09:30:00-05:00",
        "interval": "1m",
        "open": 421.37,
        "high": 421.9,
        "low": 421.05,
        "close": 421.72,
        "volume": 183400,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def check(fields: dict) -> dict | Invalid:
    return validate(json.dumps(fields).encode(), UNIVERSE, FIRST, NOW)


def test_the_published_example_is_valid_by_schema_and_by_us():
    example = json.loads((SCHEMAS / "bar-v1.example.json").read_text())
    schema = json.loads((SCHEMAS / "bar-v1.schema.json").read_text())
    jsonschema.validate(example, schema)
    record = check(example)
    assert not isinstance(record, Invalid)
    assert record["date"] == pd.Timestamp("2013-03-04")
    assert record["ts"] == pd.Timestamp("2013-03-04T14:30:00Z")


@pytest.mark.parametrize(
    ("fields", "reason", "schema_rejects"),
    [
        (message(close=...), "missing field close", True),
        (message(v=2), "v=2: only version 1", True),
        (message(close="421.7"), "close: expected a number", True),
        (message(close=-1.0), "close=-1.0: prices must be positive", True),
        (message(volume=-5), "volume=-5: must not be negative", True),
        (message(ticker="ZZZZ"), "ticker 'ZZZZ' is not in the universe", False),
        (message(high=400.0), "high=400.0 < low=421.05: impossible bar", False),
        (message(ts="2013-03-04T09:30:00"), "expected ISO 8601 with a zone", True),
        (message(ts="2013-03-06T09:30:00-05:00"), "in the future", False),
        (message(ts="2013-03-02T09:30:00-05:00"), "2013-03-02 is not an NYSE session", False),
        (message(ts="1999-03-02T09:30:00-05:00"), "before the first partition", False),
        (message(interval="1w"), "interval='1w'", True),
        (message(ts="2013-02-30T09:30:00-05:00"), "not a valid time", False),
    ],
)
def test_each_invalid_message_says_why(fields, reason, schema_rejects):
    checked = check(fields)
    assert isinstance(checked, Invalid)
    assert reason in checked.reason
    schema = json.loads((SCHEMAS / "bar-v1.schema.json").read_text())
    valid_by_schema = jsonschema.Draft202012Validator(schema).is_valid(fields)
    assert valid_by_schema is not schema_rejects


def test_a_batch_is_judged_message_by_message():
    bodies = [
        json.dumps(message(ts="2013-03-02T09:30:00-05:00")).encode(),
        json.dumps(message()).encode(),
        b"{oops",
        json.dumps(message(ticker="MSFT", ts="2013-03-01T16:00:00-05:00")).encode(),
        json.dumps(message(ts="2013-03-06T09:30:00-05:00")).encode(),
    ]
    batch = validate_batch(bodies, UNIVERSE, FIRST, NOW)
    assert batch == [validate(body, UNIVERSE, FIRST, NOW) for body in bodies]
    assert [isinstance(item, Invalid) for item in batch] == [True, False, True, False, True]
    assert batch[3]["date"] == pd.Timestamp("2013-03-01")


def test_a_batch_checked_a_column_at_a_time_keeps_each_messages_own_reason():
    """Good messages among every kind of bad one, including values that give a column mixed
    types: each gets the record or the reason the field-by-field check gives it alone."""
    odd = [
        message(close="421.7"),
        message(volume=True),
        message(v=True),  # true == 1 in Python, as in the check alone
        message(volume=10**20),  # beyond 64 bits: orjson refuses it, json takes it
        message(ticker=None),
        message(ticker=["AAPL"]),
        message(interval=5),
        message(ts=1362407400),
        message(note={"nested": [1, 2]}),
        message(high=None),
        message(ts="2013-03-04T09:30:00-05:00\n"),
    ]
    bodies = [json.dumps(m).encode() for m in odd]
    bodies += [b"[1, 2]", b"{oops", b'{"v": 1, "open": NaN}', b"\xff\xfe", b"null", b""]
    good = [json.dumps(message(ts=f"2013-03-04T10:{i:02d}:00-05:00")).encode() for i in range(30)]
    batch = good[:10] + bodies + good[10:]
    checked = validate_batch(batch, UNIVERSE, FIRST, NOW)
    for body, result in zip(batch, checked, strict=True):
        alone = _check_fields(body, UNIVERSE)
        if isinstance(alone, Invalid):
            assert result == alone, body
        else:
            assert not isinstance(result, Invalid), (body, result)
            assert {k: v for k, v in result.items() if k not in ("ts", "date")} == {
                k: v for k, v in alone.items() if k != "ts"
            }
    assert sum(not isinstance(r, Invalid) for r in checked) == 30 + 3
    # Good messages pass the column checks: only the others are checked one at a time.
    assert _fields_pass(pd.DataFrame([orjson.loads(b) for b in good]), UNIVERSE).all()


def test_not_json_is_invalid():
    assert "not JSON" in validate(b"{oops", UNIVERSE, FIRST, NOW).reason
    assert "not a JSON object" in validate(b"[1, 2]", UNIVERSE, FIRST, NOW).reason


def test_trading_date_is_new_york_time():
    late = check(message(ts="2013-03-05T01:30:00Z", interval="1h"))  # 20:30 in New York
    assert late["date"] == pd.Timestamp("2013-03-04")


def _landed(batches: list[list[dict]]) -> pd.DataFrame:
    frames = []
    for i, batch in enumerate(batches):
        records = [check(m) for m in batch]
        frames.append(landed_frame(records, f"2026-01-0{i + 1}-batch"))
    return pd.concat(frames, ignore_index=True)


def test_intraday_bars_roll_up_into_the_days_provisional_bar():
    minutes = [
        message(ts="2013-03-04T09:31:00-05:00", open=10, high=11, low=9.5, close=10.5, volume=100),
        message(ts="2013-03-04T09:30:00-05:00", open=9, high=10, low=8, close=10, volume=50),
        message(ts="2013-03-04T09:32:00-05:00", open=10.5, high=12, low=10, close=11, volume=25),
    ]
    bars, replaced = daily_bars(_landed([minutes]))
    assert bars.to_dict("records") == [
        {
            "ticker": "AAPL",
            "date": pd.Timestamp("2013-03-04"),
            "open": 9.0,
            "high": 12.0,
            "low": 8.0,
            "close": 11.0,
            "volume": 175.0,
        }
    ]
    assert replaced.empty


def test_a_repeat_counts_once_and_the_later_arrival_wins():
    first = message(close=421.72)
    again = message(close=421.72)
    corrected = message(close=421.80, high=422.0)
    bars, replaced = daily_bars(_landed([[first, again], [corrected]]))
    assert len(bars) == 1
    assert bars.loc[0, "close"] == 421.80 and bars.loc[0, "volume"] == 183400
    assert replaced[["ticker", "interval"]].to_dict("records") == [
        {"ticker": "AAPL", "interval": "1m"}
    ]
    _, no_change = daily_bars(_landed([[first, again]]))
    assert no_change.empty


def test_a_daily_bar_is_authoritative_over_the_rollup():
    day = message(ts="2013-03-04T00:00:00-05:00", interval="1d", close=430.0)
    minute = message(close=421.72)
    bars, _ = daily_bars(_landed([[minute, day]]))
    assert bars["close"].tolist() == [430.0]


def test_streamed_bars_replace_the_sources_for_their_ticker_and_date():
    source = pd.DataFrame(
        {
            "ticker": ["AAPL", "MSFT"],
            "date": pd.to_datetime(["2013-03-04", "2013-03-04"]),
            "open": [1.0, 2.0],
            "high": [1.0, 2.0],
            "low": [1.0, 2.0],
            "close": [1.0, 2.0],
            "volume": [1.0, 2.0],
        }
    )
    combined, _ = with_landed(source, _landed([[message(close=421.72)]]))
    assert dict(zip(combined["ticker"], combined["close"])) == {"AAPL": 421.72, "MSFT": 2.0}
