"""MLflow tracking and Model Registry: candidates, the persistence baseline, the champion.

Aliases, not stages: `champion` points at the version that serves predictions. The logged
model is the `StockPriceModel` pyfunc with this package's pure modules as its code, so it
loads (and serves) without the Dagster wiring.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from stock_assets import costs
from stock_assets.config import MLFLOW_EXPERIMENT, MODEL_NAME

CHAMPION = "champion"
CHALLENGER = "challenger"
BACKTEST_ARTIFACT = "backtest/backtest.parquet"
_PURE_PACKAGES = ("market", "features", "modeling")
_REQUIREMENTS = (
    "mlflow",
    "pandas",
    "numpy",
    "scikit-learn",
    # A LightGBM part of the forecaster unpickles only where lightgbm is installed.
    "lightgbm",
    "joblib",
    "exchange-calendars",
    "pyarrow",
)


def _pip_requirements() -> list[str]:
    # Explicit requirements: inferring them costs MLflow 9-20 s per logged model.
    return [f"{name}=={importlib_metadata.version(name)}" for name in _REQUIREMENTS]


def _code_paths(workdir: Path) -> list[str]:
    """A copy of the package holding only what the model imports (no Dagster wiring)."""
    source = Path(__file__).resolve().parents[1]
    target = workdir / "stock_assets"
    target.mkdir()
    shutil.copy(source / "__init__.py", target / "__init__.py")
    for package in _PURE_PACKAGES:
        shutil.copytree(
            source / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return [str(target)]


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    from stock_assets.modeling.pyfunc import PREDICTION_COLUMNS
    from stock_assets.modeling.requests import NEWS_REQUEST_COLUMNS

    prices = [ColSpec("double", name) for name in ("open", "high", "low", "close")]
    # Volumes as read_csv gives them (int64) or as floats: the model checks them itself, and
    # a double here would make in-process predict refuse integers the HTTP server accepts.
    inputs = Schema(
        [
            ColSpec("string", "ticker"),
            ColSpec("string", "date"),
            *prices,
            ColSpec(AnyType(), "volume"),
            # The session's news, where there was any (modeling.requests): optional.
            *(ColSpec(AnyType(), name, required=False) for name in NEWS_REQUEST_COLUMNS),
        ]
    )
    dates = {"ticker", "as_of_date", "target_date", "score_note"}
    outputs = Schema([ColSpec("string" if c in dates else "double", c) for c in PREDICTION_COLUMNS])
    params = ParamSchema([ParamSpec("all_dates", "boolean", False)])
    # A row without a score holds NaN there: a double column that may be empty.
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def training_window(version: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last session a registered version was trained on (tag `data_window`)."""
    first, last = version.tags["data_window"].split("..")
    return pd.Timestamp(first), pd.Timestamp(last)


def _log_member(member: dict[str, Any], dagster_run_id: str) -> None:
    """One zoo member's walk-forward as a run nested under the candidate's: its parameters,
    scores and the configuration each fold chose (artifact `member.json`)."""
    import mlflow

    tags = {
        "target": member["target"],
        "chosen": str(member["chosen"]).lower(),
        "dagster_run_id": dagster_run_id,
    }
    with mlflow.start_run(run_name=member["name"], nested=True, tags=tags):
        mlflow.log_params(member["params"])
        mlflow.log_metrics(_finite(member["scores"]))
        mlflow.log_dict(member, "member.json")


def _finite(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if v is not None and not math.isnan(v)}


class ModelRegistry(dg.ConfigurableResource):
    """MLflow tracking server or embedded store, and the registered model's name."""

    tracking_uri: str
    experiment: str = MLFLOW_EXPERIMENT
    artifact_location: str | None = None
    model_name: str = MODEL_NAME

    def client(self) -> Any:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        if mlflow.get_experiment_by_name(self.experiment) is None:
            mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        mlflow.set_experiment(self.experiment)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def log_candidate(
        self,
        forecaster: Any,
        candidate: str,
        scores: dict[str, dict[str, dict[str, float]]],
        tags: dict[str, str],
        backtest: pd.DataFrame,
        members: list[dict[str, Any]] | None = None,
    ) -> Any:
        """Log a pyfunc around a Forecaster as a new registered version, with its scores
        (target -> candidate -> score) as metrics and each zoo member's walk-forward as a
        nested run."""
        import joblib
        import mlflow

        from stock_assets.modeling import served_model
        from stock_assets.modeling.pyfunc import PIPELINE_ARTIFACT

        client = self.client()
        run_tags = {**tags, "candidate": candidate}
        with (
            tempfile.TemporaryDirectory() as workdir,
            mlflow.start_run(run_name=f"{candidate}", tags=run_tags),
        ):
            for target, by_candidate in scores.items():
                for name, values in by_candidate.items():
                    metrics = {f"{target}.{name}.{k}": v for k, v in _finite(values).items()}
                    mlflow.log_metrics(metrics)
            path = Path(workdir) / "backtest.parquet"
            backtest.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="backtest")
            for member in members or []:
                _log_member(member, tags.get("dagster_run_id", ""))
            artifacts = {}
            if forecaster.parts:
                artifacts[PIPELINE_ARTIFACT] = str(Path(workdir) / "forecaster.joblib")
                joblib.dump(forecaster, artifacts[PIPELINE_ARTIFACT])
            with warnings.catch_warnings():
                # Its only advice is an input example; ours needs 60+ bars of history to run.
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=served_model.__file__,
                    artifacts=artifacts,
                    code_paths=_code_paths(Path(workdir)),
                    pip_requirements=_pip_requirements(),
                    signature=_signature(),
                    registered_model_name=self.model_name,
                )
            costs.count(costs.MLFLOW_ARTIFACT_BYTES, _folder_bytes(Path(workdir)))
        version = info.registered_model_version
        for key, value in run_tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, value)
        return client.get_model_version(self.model_name, str(version))

    def versions(self, candidate: str | None = None) -> list[Any]:
        client = self.client()
        found = client.search_model_versions(f"name='{self.model_name}'")
        if candidate is not None:
            found = [v for v in found if v.tags.get("candidate") == candidate]
        return sorted(found, key=lambda v: int(v.version))

    def alias(self, alias: str) -> Any | None:
        """The version an alias points at, or None if it points nowhere yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None

    def champion(self) -> Any | None:
        return self.alias(CHAMPION)

    def challenger(self) -> Any | None:
        return self.alias(CHALLENGER)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, str(version))

    def set_champion(self, version: str) -> None:
        self.set_alias(CHAMPION, version)

    def version(self, version: str) -> Any:
        return self.client().get_model_version(self.model_name, str(version))

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, value)

    def describe_version(self, version: str, description: str) -> None:
        self.client().update_model_version(self.model_name, str(version), description)

    def load(self, version: str) -> Any:
        import mlflow

        self.client()
        return mlflow.pyfunc.load_model(f"models:/{self.model_name}/{version}")

    def forecaster(self, version: str) -> Any:
        """The Forecaster a version serves (its parts, or the baselines)."""
        return self.load(version).unwrap_python_model().forecaster

    def log_report(self, version: Any, name: str, page: str) -> None:
        """Attach an HTML report to the MLflow run that produced a version."""
        with tempfile.TemporaryDirectory() as workdir:
            path = Path(workdir) / name
            path.write_text(page, encoding="utf-8")
            self.client().log_artifact(version.run_id, str(path), artifact_path="reports")
            costs.count(costs.MLFLOW_ARTIFACT_BYTES, path.stat().st_size)

    def backtest(self, version: Any) -> pd.DataFrame:
        """The walk-forward out-of-sample predictions logged with a version."""
        import mlflow

        self.client()
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=BACKTEST_ARTIFACT
        )
        return pd.read_parquet(path)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
