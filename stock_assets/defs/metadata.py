"""Dagster's standard metadata, derived once from what the assets write.

Column schemas come from the warehouse's SQLAlchemy tables (their `comment`s describe the
columns) and from the Parquet datasets' column types; the UI shows them on each asset's page
beside `dagster/table_name` and every materialization's `dagster/row_count`.
"""

from collections.abc import Mapping

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from stock_assets.features.indicators import FEATURE_COLUMNS, FEATURES, LABEL
from stock_assets.market.bars import empty_bars

# Who answers for every asset of this code location (an email address or `team:<name>`).
OWNERS = ["team:stock-assets"]
ROW_COUNT = "dagster/row_count"


def table_schema(table: sa.Table) -> dg.TableSchema:
    """A warehouse table's columns: name, SQL type, description, nullability and uniqueness."""
    keys = list(table.primary_key.columns)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type).lower(),
                description=column.comment,
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable), unique=keys == [column]
                ),
            )
            for column in table.columns
        ]
    )


def frame_schema(
    dtypes: Mapping[str, str], descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    """A Parquet dataset's columns, by the pandas types it is written with."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=dtype, description=(descriptions or {}).get(name))
            for name, dtype in dtypes.items()
        ]
    )


def warehouse_table(table: sa.Table) -> dict[str, object]:
    """Definition metadata of an asset that writes a warehouse table."""
    return {
        "dagster/table_name": table.name,
        "dagster/column_schema": dg.MetadataValue.table_schema(table_schema(table)),
    }


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


RAW_PRICES_SCHEMA = dg.MetadataValue.table_schema(frame_schema(_dtypes(empty_bars())))
# features.indicators.build_features: ticker, date, the close as traded, every feature as
# float32 (its expression as the description), and the next session's return as the label.
PRICE_FEATURES_SCHEMA = dg.MetadataValue.table_schema(
    frame_schema(
        {
            "ticker": "object",
            "date": "datetime64[ns]",
            "close": "float64",
            **dict.fromkeys(FEATURE_COLUMNS, "float32"),
            LABEL: "float64",
        },
        {**FEATURES, LABEL: "the next session's ret_1d (NaN until it is known)"},
    )
)


def row_count(rows: int) -> dict[str, dg.MetadataValue]:
    return {ROW_COUNT: dg.MetadataValue.int(int(rows))}
