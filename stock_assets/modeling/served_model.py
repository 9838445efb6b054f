"""The model MLflow logs and serves, as code (see MLflow's models-from-code)."""

import mlflow

from stock_assets.modeling.pyfunc import StockPriceModel

mlflow.models.set_model(StockPriceModel())
