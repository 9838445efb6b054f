"""The feeds' small state files: read with an error that names the fix, written whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


class FeedStateError(ValueError):
    """A feed's state file cannot be read; the message says where and what to do."""


def read_state(path: Path, field: str) -> dict:
    """The `field` of a state file, or {} when there is none yet."""
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())[field])
    except (ValueError, KeyError, TypeError) as error:
        raise FeedStateError(
            f"{path}: not a feed state file ({error}); move it aside and start the feed again: "
            "it then publishes its first window again, which landing counts once"
        ) from error


def write_state(path: Path, field: str, value: dict) -> None:
    """Replace the state file in one step: a crash leaves the old one or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        json.dump({"version": 1, field: value}, handle, indent=1)
    os.replace(handle.name, path)


def set_aside(folder: Path, name: str, now: pd.Timestamp, what: Any) -> Path:
    """Keep what a poll could not use (payloads, reasons) where an operator will look: one
    JSON file per poll, named by the feed and the poll's time."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{now:%Y%m%dT%H%M%S%fZ}.json"
    path.write_text(json.dumps(what, indent=1, default=str))
    return path
