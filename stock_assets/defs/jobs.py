"""Jobs: named selections the sensors and schedules launch."""

import dagster as dg

from stock_assets.defs.partitions import trading_days

refresh_prices = dg.define_asset_job(
    "refresh_prices",
    selection=dg.AssetSelection.assets(
        "raw_prices", "cleaned_prices", "price_features", "price_predictions", "news_sentiment"
    ),
    partitions_def=trading_days,
    description="Bring trading dates from raw bars (and their news) through to fresh "
    "predictions, in one run.",
    # Its steps run one after another anyway; in the run's own process they skip starting a
    # process and importing the code location per step (seconds each, on every new bar).
    executor_def=dg.in_process_executor,
)

retrain_model = dg.define_asset_job(
    "retrain_model",
    selection=dg.AssetSelection.assets("price_model", "champion_model"),
    description="Train a challenger on the stored features; the promotion gate decides whether "
    "it serves.",
)
