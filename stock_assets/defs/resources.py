"""Every external system's resource, local or production, chosen here from the settings, the
backtest's trading costs, how landed batches are reconciled and what the cost estimates
charge."""

from __future__ import annotations

from dataclasses import asdict

import dagster as dg

from stock_assets.config import Settings, load_settings
from stock_assets.defs.costs import CloudPrices
from stock_assets.defs.ingestion.resources import RabbitMQ, Reconciliation
from stock_assets.defs.modeling.resources import TradingCosts
from stock_assets.defs.processing.resources import NewsLexicon
from stock_assets.storage.market_data import (
    FileMarketData,
    MarketData,
    SampleMarketData,
    SyntheticMarketData,
)
from stock_assets.storage.model_registry import ModelRegistry
from stock_assets.storage.object_store import LocalObjectStore, ObjectStore
from stock_assets.storage.warehouse import Warehouse


def object_store(settings: Settings) -> ObjectStore:
    if settings.object_store == "s3":
        from dagster_aws.s3 import S3Resource

        from stock_assets.storage.s3_store import S3ObjectStore

        return S3ObjectStore(
            s3=S3Resource(
                endpoint_url=settings.s3_endpoint_url or None,
                aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
            ),
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
        )
    return LocalObjectStore(root=str(settings.local_store_root))


def market_data(settings: Settings) -> MarketData:
    tickers = list(settings.tickers)
    membership = settings.membership_file
    if settings.source == "files":
        return FileMarketData(
            tickers=tickers, path=settings.source_path, membership_path=membership
        )
    if settings.source == "synthetic":
        return SyntheticMarketData(
            tickers=tickers,
            membership_path=membership,
            n_tickers=settings.synthetic_tickers,
            years=settings.synthetic_years,
            first_session=settings.start_date,
            seed=settings.synthetic_seed,
        )
    return SampleMarketData(tickers=tickers, membership_path=membership)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    settings.home.mkdir(parents=True, exist_ok=True)
    artifacts = None
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        # An embedded store keeps artifacts beside it, not in whatever folder runs happen in.
        artifacts = (settings.home / "mlartifacts").as_uri()
    return {
        "object_store": object_store(settings),
        "warehouse": Warehouse(url=settings.warehouse_url),
        "model_registry": ModelRegistry(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            artifact_location=artifacts,
            model_name=settings.model_name,
        ),
        "broker": RabbitMQ(
            # A URL holding credentials stays in the environment, not in run config.
            url=dg.EnvVar("STOCK_ASSETS_AMQP_URL") if settings.amqp_url_set else settings.amqp_url,
            max_message_bytes=settings.max_message_bytes,
            wait_seconds=settings.bars_wait_seconds,
        ),
        "market_data": market_data(settings),
        "trading_costs": TradingCosts(cost_bps=settings.cost_bps),
        "reconciliation": Reconciliation(settle_seconds=settings.reconcile_settle_seconds),
        "news_lexicon": NewsLexicon(wordlists=settings.lm_wordlists),
        "cloud_prices": CloudPrices(**asdict(settings.unit_prices), record=settings.record_costs),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(load_settings()))
