"""What the ingestion sensors are configured with besides the external systems."""

import dagster as dg
from pydantic import Field

from stock_assets.config import DEFAULT_RECONCILE_SETTLE_SECONDS


class Reconciliation(dg.ConfigurableResource):
    """How `landed_batches_sensor` asks again for the refresh of a landed batch."""

    settle_seconds: float = Field(default=DEFAULT_RECONCILE_SETTLE_SECONDS, ge=0)
    """A batch is left to its own sensor's request this long after it lands, and to Dagster's
    run retries this long after a run of it ends (STOCK_ASSETS_RECONCILE_SETTLE_SECONDS)."""
    max_runs: int = Field(default=4, ge=1)
    """Runs per batch, Dagster's retries included, before it is given up and reported."""
    max_batches_per_tick: int = Field(default=200, ge=1)
    """Batches looked at per tick (each costs a query of the run storage): a long backlog, after
    an upgrade, is worked through a few ticks at a time."""
