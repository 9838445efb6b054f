"""The one way tests materialize the asset graph, and the trained sample they share.

Training the bundled sample (2005-2006) is the slowest thing the tests do, so a session builds
it once (`TrainedSample.shared`, once for all pytest-xdist workers too) and each test that
needs it works on its own copy (`TrainedSample.copy_to`): the copy's SQLite files and MLflow
store point at the copy, never at the original.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from stock_assets.config import Settings, load_settings
from stock_assets.defs.partitions import range_tags

REPO = Path(__file__).resolve().parents[1]
FIRST, LAST = "2005-01-03", "2006-12-29"
HISTORY = ["raw_prices", "cleaned_prices", "price_features"]
MODEL = ["price_model", "champion_model"]
PREDICTIONS = ["price_predictions"]
DELIVERY = ["drift_checks", "prediction_report"]
# Settings that would lead a test's state away from its temporary home.
STATE_ELSEWHERE = ("MLFLOW_TRACKING_URI", "STOCK_ASSETS_WAREHOUSE_URL", "DAGSTER_HOME")


def embedded_settings(home: Path) -> Settings:
    """Embedded-default settings with all state under `home`, whatever the environment says."""
    with pytest.MonkeyPatch.context() as patch:
        for name in STATE_ELSEWHERE:
            patch.delenv(name, raising=False)
        patch.setenv("STOCK_ASSETS_HOME", str(home))
        return load_settings()


def embedded_instance(folder: Path) -> dg.DagsterInstance:
    """The embedded default's Dagster instance (`dagster.yaml`: a run's materializations stored
    in batches, as `make demo` stores them) with its state in `folder`. A range run records far
    faster on it than on `DagsterInstance.ephemeral()`, which stores one event at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(folder))


def materialize(
    definitions: dg.Definitions,
    resources: dict,
    selection: Sequence[str],
    first: str | pd.Timestamp | None = None,
    last: str | pd.Timestamp | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize `selection` in process; with `first`, as one run over the sessions from
    `first` to `last` (default: `first` alone), as a single-run backfill is."""
    if first is not None:
        span = range_tags(pd.Timestamp(first), pd.Timestamp(last if last is not None else first))
        tags = {**(tags or {}), **span}
    return dg.materialize(
        definitions.assets,
        selection=list(selection),
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def tick(definitions: dg.Definitions, resources: dict, sensor: str) -> Any:
    """One evaluation of `sensor`, as a tick of the daemon runs it."""
    with dg.build_sensor_context(resources=resources, definitions=definitions) as context:
        return definitions.resolve_sensor_def(sensor)(context)


def _relocate_sqlite(database: Path, old: str, new: str) -> None:
    """Rewrite every text value holding `old` (an absolute path) to `new`: MLflow keeps
    absolute artifact locations in its store."""
    with closing(sqlite3.connect(database)) as connection, connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if "CHAR" in kind or "TEXT" in kind or "CLOB" in kind:
                    connection.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                        f'WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )


@dataclass(frozen=True)
class TrainedSample:
    """The sample from FIRST to LAST materialized through every asset, kept read-only.

    `trained` is the state folder after the history and the promotion gate (a champion, no
    predictions yet); `home` is it after predictions, drift checks and the report.
    `metadata` holds each asset's materialization metadata and `checks` each asset check's
    evaluation metadata (by "asset:check"), as plain values.
    """

    home: Path
    trained: Path
    metadata: dict[str, dict[str, Any]]
    checks: dict[str, dict[str, Any]]

    @classmethod
    def shared(cls, root: Path) -> TrainedSample:
        """The sample under `root`, built by whichever process of the session asks first
        (pytest-xdist workers share `root`) while the others wait for it."""
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        summary = root / "sample.json"
        with (root / "build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not summary.exists():
                # A build stopped half-way (its worker's session ended first) starts over.
                for partial in (root / "home", root / "trained"):
                    shutil.rmtree(partial, ignore_errors=True)
                summary.write_text(json.dumps(_build(root), default=str))
        built = json.loads(summary.read_text())
        return cls(
            home=root / "home", trained=root / "trained", metadata=built["metadata"],
            checks=built["checks"],
        )  # fmt: skip

    @staticmethod
    def build_in_background(root: Path) -> subprocess.Popen | None:
        """Start building the sample under `root` in a process of its own, unless a process
        of this session has already started it: the tests that do not need it run meanwhile,
        and `shared` waits for it (its lock) only if it is asked for before it is done.
        The caller stops the process by its PID (`stop_background_build`)."""
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        try:
            (root / "build.started").open("x").close()
        except FileExistsError:
            return None
        command = [
            sys.executable, "-c",
            "import sys; from pathlib import Path; "
            "from stock_assets_tests.graph import TrainedSample; "
            "TrainedSample.shared(Path(sys.argv[1]))",
            str(root),
        ]  # fmt: skip
        with (root / "build.log").open("w") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def copy_to(self, destination: Path, *, trained_only: bool = False) -> Path:
        """A private copy of the sample (or of its `trained` stage) at `destination`."""
        return _copy_home(self.trained if trained_only else self.home, destination)


def stop_background_build(process: subprocess.Popen) -> None:
    """Stop a background build (by its PID) that the session no longer waits for."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _build(root: Path) -> dict[str, dict]:
    """Materialize the sample into `root`/home, with `root`/trained a copy of it after the
    promotion gate; the metadata of what ran."""
    from stock_assets.definitions import defs
    from stock_assets.defs.resources import build_resources

    home = root / "home"
    resources, definitions = build_resources(embedded_settings(home)), defs()
    metadata: dict[str, dict] = {}
    checks: dict[str, dict] = {}
    with embedded_instance(root / "dagster") as instance:
        for selection, span in (
            (HISTORY, (FIRST, LAST)),
            (MODEL, ()),
            (PREDICTIONS, (FIRST, LAST)),
            (DELIVERY, ()),
        ):
            result = materialize(definitions, resources, selection, *span, instance=instance)
            # A range run records the same metadata on each of its partitions: keep one.
            events = result.get_asset_materialization_events()
            for asset, event in {e.asset_key.to_user_string(): e for e in events}.items():
                metadata[asset] = {k: v.value for k, v in event.materialization.metadata.items()}
            for evaluation in result.get_asset_check_evaluations():
                key = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                checks[key] = {k: v.value for k, v in evaluation.metadata.items()}
            if selection is MODEL:
                _copy_home(home, root / "trained")
    resources["warehouse"].engine.dispose()
    return {"metadata": metadata, "checks": checks}


def _copy_home(source: Path, destination: Path) -> Path:
    source, destination = source.resolve(), destination.resolve()
    shutil.copytree(source, destination)
    old, new = str(source), str(destination)
    for database in destination.glob("*.db"):
        _relocate_sqlite(database, old, new)
    for model in destination.glob("mlartifacts/**/MLmodel"):
        model.write_text(model.read_text().replace(old, new))
    return destination


def gate_evidence(rows: pd.DataFrame, tags: dict[str, str], target: str) -> bool:
    """Whether the gate's stored evidence for a target promotes it: the challenger's row holds
    its two tests and the adjusted p-value, as its version's tags do; the rows of the others
    hold none."""
    challenger = rows.loc["challenger"]
    others = rows.drop(index="challenger")
    assert others[["p_vs_champion", "p_vs_baseline", "p_adjusted"]].isna().all().all()
    p_adjusted = challenger["p_adjusted"]
    if pd.isna(p_adjusted):  # a target that could not be tested (the score on five tickers)
        assert f"promotion.{target}.p_adjusted" not in tags
        return False
    worst = max(challenger["p_vs_champion"], challenger["p_vs_baseline"])
    assert worst <= p_adjusted <= 1
    assert float(tags[f"promotion.{target}.p_adjusted"]) == pytest.approx(p_adjusted, rel=1e-5)
    assert "t(" in challenger["evidence_test"]
    # A return with signal (Clark-West) but the larger squared error is refused, and says so.
    worse = "forecasts worse on the window" in tags[f"promotion.{target}.reason"]
    return bool(p_adjusted <= 0.05) and not worse
