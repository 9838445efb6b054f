"""Where a run's steps execute: in the run's own process, or on Celery workers (`make workers`)."""

import dagster as dg

from stock_assets.config import load_settings

# Results of finished tasks go back over the broker (no result store to run) and expire
# from it after a minute: nothing waits that long for one, and RabbitMQ keeps no leftovers.
CELERY_RESULT_BACKEND = "rpc://"


@dg.definitions
def executor() -> dg.Definitions:
    """STOCK_ASSETS_EXECUTOR=celery sends every step to the workers through RabbitMQ; by
    default a run executes its steps one after another in its own process."""
    settings = load_settings()
    if settings.executor != "celery":
        # Dagster's default starts a process per step, each importing the code location
        # again (seconds of CPU): the drift automation after every new prediction, and each
        # retrain, would take that from the next refresh. The graph is a chain; on a machine's
        # few cores, parallel steps gain little.
        return dg.Definitions(executor=dg.in_process_executor)
    from dagster_celery import celery_executor

    return dg.Definitions(
        executor=celery_executor.configured(
            {
                # A URL holding credentials stays in the environment, as for the broker resource.
                "broker": {"env": settings.celery_broker_url_env}
                if settings.celery_broker_url_env
                else settings.celery_broker_url,
                "backend": CELERY_RESULT_BACKEND,
                "config_source": {"result_expires": 60},
            }
        )
    )
