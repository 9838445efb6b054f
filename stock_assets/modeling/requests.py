"""The served model's request: daily bars in the columns and types its signature expects.

Apart from the pyfunc so that callers (the predictions asset, tests) need not import MLflow.
"""

import pandas as pd


def to_model_input(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars in the model's request schema (dates as ISO strings, numbers as floats)."""
    frame = bars[["ticker", "date", "open", "high", "low", "close", "volume"]].copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    frame[["open", "high", "low", "close", "volume"]] = frame[
        ["open", "high", "low", "close", "volume"]
    ].astype("float64")
    return frame.reset_index(drop=True)
