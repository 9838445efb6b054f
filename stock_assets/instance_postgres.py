"""The production instance's event log (`deploy/dagster.yaml`): dagster-postgres's, with a check
planned over a range's partitions serialized once (`instance.PlannedChecksOnce`).

Apart from `instance` so that the embedded default never imports dagster-postgres.
"""

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from stock_assets.instance import PlannedChecksOnce


class PlannedChecksOncePostgresEventLogStorage(PlannedChecksOnce, PostgresEventLogStorage):
    """dagster-postgres's event log storage, configured the same way (`postgres_url` ...)."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "PlannedChecksOncePostgresEventLogStorage":
        # As dagster-postgres's own, which builds its own class rather than `cls`.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
