"""Small PNG charts for Dagster asset metadata, embedded in markdown.

Drawn with matplotlib's Agg backend: Plotly's PNG export needs a Chrome of its own.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd


def _markdown(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![chart](data:image/png;base64,{encoded})"


def _axes(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 2.4))
    axes.set_title(title, fontsize=9)
    axes.tick_params(labelsize=7)
    return figure, axes


def walk_forward_chart(backtest: pd.DataFrame) -> str:
    """Cumulative squared price error of the model minus persistence's, through the
    walk-forward test blocks: a line that falls is a model beating persistence."""
    frame = backtest.sort_values("date")
    model = (frame["close"] * (frame["predicted_return"] - frame["label"])) ** 2
    persistence = (frame["close"] * frame["label"]) ** 2
    daily = (model - persistence).groupby(frame["date"]).sum().cumsum()
    figure, axes = _axes("walk-forward: cumulative squared error, model minus persistence")
    axes.plot(daily.index, daily.to_numpy(), color="#1f77b4", linewidth=1)
    axes.axhline(0, color="#888888", linewidth=0.8)
    return _markdown(figure)


def feature_shift_chart(reference: pd.DataFrame, recent: pd.DataFrame, feature: str) -> str:
    """One feature's distribution in the training window against recent sessions."""
    figure, axes = _axes(f"{feature}: training window vs recent sessions")
    values = np.concatenate([reference[feature].dropna(), recent[feature].dropna()])
    if len(values):
        bins = np.quantile(values, np.linspace(0.005, 0.995, 41))
        bins = np.unique(bins)
        axes.hist(reference[feature].dropna(), bins=bins, density=True, alpha=0.5, label="training")
        axes.hist(recent[feature].dropna(), bins=bins, density=True, alpha=0.5, label="recent")
        # A fixed corner: "best" searches the data for a free spot, slowly on large histograms.
        axes.legend(fontsize=7, loc="upper right")
    return _markdown(figure)


def features_chart(features: pd.DataFrame, feature: str = "vol_20") -> str:
    """One feature per ticker over the run's sessions."""
    figure, axes = _axes(f"{feature} per ticker")
    for ticker, rows in features.groupby("ticker"):
        axes.plot(rows["date"], rows[feature], linewidth=1, label=str(ticker))
    if features["ticker"].nunique() <= 10:
        axes.legend(fontsize=6, ncol=5, loc="upper left")
    return _markdown(figure)
