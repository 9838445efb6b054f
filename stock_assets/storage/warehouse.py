"""The warehouse: the tables people and dashboards read, behind any SQLAlchemy URL.

SQLite on the embedded default, PostgreSQL in production. Every write is one transaction,
and every write is an upsert or a replace of whole dates, so re-running never duplicates.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from stock_assets import costs
from stock_assets.modeling.targets import RETURN, SCORES

metadata = sa.MetaData()

prices = sa.Table(
    "prices",
    metadata,
    sa.Column("ticker", sa.String(16), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True, comment="the NYSE session"),
    sa.Column("open", sa.Float, nullable=False, comment="as traded, not split-adjusted"),
    sa.Column("high", sa.Float, nullable=False, comment="as traded"),
    sa.Column("low", sa.Float, nullable=False, comment="as traded"),
    sa.Column("close", sa.Float, nullable=False, comment="as traded"),
    sa.Column("volume", sa.Float, nullable=False, comment="shares, as traded"),
    sa.Column(
        "split_ratio",
        sa.Float,
        nullable=False,
        comment="new shares per old share of a split detected on this session, else 1",
    ),
)

# market.universe: each ticker's span, updated by every cleaned_prices run.
universe = sa.Table(
    "universe",
    metadata,
    sa.Column("ticker", sa.String(16), primary_key=True),
    sa.Column("first_session", sa.Date, nullable=False, comment="its first stored bar"),
    sa.Column("last_session", sa.Date, nullable=False, comment="its last stored bar"),
    sa.Column(
        "delisted_from",
        sa.Date,
        comment="the session after its last bar, where that is before the data's last "
        "session; NULL while it trades",
    ),
)

price_predictions = sa.Table(
    "price_predictions",
    metadata,
    sa.Column("ticker", sa.String(16), nullable=False),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="the session predicted from"),
    sa.Column("target_date", sa.Date, nullable=False, comment="the next session, predicted"),
    sa.Column("predicted_return", sa.Float, nullable=False, comment="close to close"),
    sa.Column("predicted_close", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, comment="registry version"),
    sa.Column(
        "kind",
        sa.String(16),
        nullable=False,
        comment="backtest (walk-forward, out of sample) or live (after training)",
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("ticker", "as_of_date", "model_version", "kind"),
    # modeling.forecast.FORECAST_COLUMNS
    sa.Column("predicted_volatility", sa.Float, comment="the next session's std of its return"),
    *(
        sa.Column(f"return_q{q}", sa.Float, comment=f"the return's {int(q)}% quantile")
        for q in ("05", "10", "50", "90", "95")
    ),
    *(
        sa.Column(f"close_{side}_{level}", sa.Float, comment=f"the {level}% price range's {side}")
        for level in (80, 90)
        for side in ("low", "high")
    ),
    sa.Column(
        "score",
        sa.Float,
        comment="cross-sectional: higher, likely to do better than the others that session",
    ),
    sa.Column("score_note", sa.String(200), comment="why score is NULL (too few tickers)"),
)


def _score_columns(return_scores: bool) -> list[sa.Column]:
    """One column per score a target reports (modeling.targets.SCORES): the return's, which
    came first and stand first, or the others'. A score two targets share (ic) is one column,
    and the row's target says which it is."""
    targets: dict[str, list[str]] = {}
    meanings: dict[str, str] = {}
    for target, scores in SCORES.items():
        for name, meaning in scores.items():
            targets.setdefault(name, []).append(target)
            meanings.setdefault(name, meaning)
    return [
        sa.Column(name, sa.Float, comment=f"{', '.join(targets[name])}: {meanings[name]}")
        for name in targets
        if (name in SCORES[RETURN]) == return_scores
    ]


model_scores = sa.Table(
    "model_scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32)),
    sa.Column(
        "candidate",
        sa.String(32),
        nullable=False,
        comment="challenger, champion, model, composite or a baseline (persistence, ...)",
    ),
    *_score_columns(return_scores=True),
    sa.Column("rows", sa.Integer),
    sa.Column("eval_start", sa.Date),
    sa.Column("eval_end", sa.Date),
    sa.Column("champion", sa.Boolean, nullable=False),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "evaluation",
        sa.String(32),
        comment="walk_forward (training, price_model) or promotion_gate (champion_model)",
    ),
    sa.Column(
        "decision",
        sa.String(16),
        comment="the gate's outcome, promoted or refused, on every row of its evaluation",
    ),
    sa.Column(
        "target",
        sa.String(16),
        server_default="return",
        comment="what the row scores: return, range, volatility or score",
    ),
    *_score_columns(return_scores=False),
    # What the long-short backtest paid to trade: basis points per unit of weight traded
    # (STOCK_ASSETS_COST_BPS when it ran).
    sa.Column("cost_bps", sa.Float),
    # What the scores stand on, and the gate's evidence (modeling.evidence).
    sa.Column("rows_scored", sa.Integer, comment="the window's feature rows every score used"),
    sa.Column(
        "rows_excluded",
        sa.Integer,
        comment="the window's feature rows left out of every score alike: rows_scored + "
        "rows_excluded is the window's feature rows",
    ),
    sa.Column(
        "excluded_reasons",
        sa.String(200),
        comment="rows_excluded by reason (modeling.evidence.EXCLUSIONS), e.g. 'gap=3, "
        "no_features=40'",
    ),
    sa.Column(
        "stat_vs_champion",
        sa.Float,
        comment="challenger rows of the gate: t-statistic of the mean per-session loss "
        "differential against the champion (negative favours the challenger)",
    ),
    sa.Column(
        "p_vs_champion", sa.Float, comment="its one-sided p-value (the challenger is better)"
    ),
    sa.Column(
        "stat_vs_baseline",
        sa.Float,
        comment="the same against the target's baseline (persistence, trailing_gaussian, "
        "trailing_volatility, momentum_20)",
    ),
    sa.Column("p_vs_baseline", sa.Float, comment="its one-sided p-value"),
    sa.Column(
        "p_adjusted",
        sa.Float,
        comment="the larger of the two p-values, Holm-adjusted across the targets: the gate "
        "promotes where it is at most its level",
    ),
    sa.Column(
        "evidence_test",
        sa.String(64),
        comment="the test behind the statistics, e.g. 'clark-west, ewc t(6)'",
    ),
)

drift_checks = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column(
        "subject",
        sa.String(64),
        nullable=False,
        comment='a ticker, a feature, or "ALL" for the whole universe',
    ),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("window_start", sa.Date),
    sa.Column("window_end", sa.Date),
    sa.Column("model_version", sa.String(32)),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "status",
        sa.String(16),
        comment="passed, failed, or no_data (no value: nothing to judge, not a failure); "
        "NULL on rows kept before this column, read through modeling.drift.statuses",
    ),
)

# Per ticker and session, the news that counts for it (features.news.session_sentiment).
news_sentiment = sa.Table(
    "news_sentiment",
    metadata,
    sa.Column("ticker", sa.String(16), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("news_count", sa.Integer, nullable=False, comment="articles for this session"),
    sa.Column("news_sentiment", sa.Float, nullable=False, comment="mean VADER compound, -1 to 1"),
    sa.Column(
        "news_sentiment_lm",
        sa.Float,
        comment="Loughran-McDonald's score, with the user's word lists (else NULL)",
    ),
)

# What each materialization cost (stock_assets.costs): one row per asset and run, its usage
# over the run's partitions and that usage priced at the settings' unit prices.
asset_costs = sa.Table(
    "asset_costs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("asset", sa.String(64), nullable=False),
    sa.Column("dagster_run_id", sa.String(64), nullable=False),
    sa.Column("first_partition", sa.Date, comment="NULL for an unpartitioned asset"),
    sa.Column("last_partition", sa.Date),
    sa.Column("partitions", sa.Integer, nullable=False, comment="the usage is shared equally"),
    sa.Column("tickers", sa.Integer, comment="the universe's size when it ran"),
    sa.Column("wall_s", sa.Float, nullable=False),
    sa.Column("cpu_s", sa.Float, nullable=False, comment="CPU seconds of the asset's body"),
    sa.Column("peak_rss_bytes", sa.BigInteger, nullable=False, comment="the process's peak"),
    sa.Column("objects_written", sa.BigInteger, nullable=False),
    sa.Column("bytes_written", sa.BigInteger, nullable=False),
    sa.Column("objects_read", sa.BigInteger, nullable=False),
    sa.Column("bytes_read", sa.BigInteger, nullable=False),
    sa.Column("listings", sa.BigInteger, nullable=False),
    sa.Column("warehouse_rows", sa.BigInteger, nullable=False),
    sa.Column("mlflow_artifact_bytes", sa.BigInteger, nullable=False),
    sa.Column("compute_usd", sa.Float, nullable=False),
    sa.Column("storage_usd", sa.Float, nullable=False, comment="a month of what was written"),
    sa.Column("requests_usd", sa.Float, nullable=False),
    sa.Column("total_usd", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

_CHUNK = 500
# Rows converted to Python values at a time: bounds memory on a million-row write.
_ROWS_PER_BATCH = 20_000


@lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # A server restarted since a pooled connection was opened has closed it: each checkout
    # checks first, so a long-lived process (a sensor's code server) does not fail once per
    # dead connection after a database restart.
    engine = sa.create_engine(url, pool_pre_ping=not sqlite)
    metadata.create_all(engine)
    _add_new_columns(engine)
    return engine


@lru_cache(maxsize=8)
def _read_only_engine(url: str) -> sa.Engine:
    """An engine that cannot write: no schema set-up, and the database refuses writes."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            raise FileNotFoundError(
                f"warehouse {path} does not exist: run `make demo` first, or point "
                "STOCK_ASSETS_WAREHOUSE_URL at an existing warehouse"
            )
        return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    if backend == "postgresql":
        return sa.create_engine(
            url, connect_args={"options": "-c default_transaction_read_only=on"}
        )
    return sa.create_engine(url)


def _add_new_columns(engine: sa.Engine) -> None:
    """Add columns a later release appended to a table (always nullable) to an older database,
    so a warehouse keeps its rows across upgrades."""
    inspector = sa.inspect(engine)
    # Several step processes may open the same old warehouse at once: adding a column must
    # tolerate another process having just added it.
    guard = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            if column.server_default is not None:
                kind += f" DEFAULT '{column.server_default.arg}'"
            statement = f'ALTER TABLE {table.name} ADD COLUMN {guard}"{column.name}" {kind}'
            try:
                with engine.begin() as connection:
                    connection.execute(sa.text(statement))
            except sa.exc.OperationalError as error:
                if "duplicate column" not in str(error).lower():
                    raise


def _python_columns(frame: pd.DataFrame, table: sa.Table) -> list[np.ndarray]:
    """Each column as plain Python values: NaN as None, and a timestamp as a date where its
    table column is a date (a timestamp column keeps its time of day)."""
    columns = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column) and not isinstance(
            table.c[name].type, sa.DateTime
        ):
            column = column.dt.date
        columns.append(column.astype(object).where(column.notna(), None).to_numpy())
    return columns


def _records(frame: pd.DataFrame, table: sa.Table) -> list[dict]:
    """Rows as plain Python values for any driver."""
    names = list(frame.columns)
    # Built column by column, then zipped: several times faster than DataFrame.to_dict.
    columns = _python_columns(frame, table)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _driver_rows(
    frame: pd.DataFrame, table: sa.Table, dialect: sa.Dialect, names: list[str]
) -> list[tuple]:
    """Rows as the driver takes them, columns in `names` order: each value through its column
    type's bind processor, as SQLAlchemy passes it, without SQLAlchemy's work per row."""
    columns = []
    for name, values in zip(names, _python_columns(frame[names], table), strict=True):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append(values if process is None else [process(v) for v in values])
    return list(zip(*columns, strict=True))


def _insert_many(
    connection: sa.Connection, statement: sa.Insert, table: sa.Table, frame: pd.DataFrame
) -> None:
    """Execute an INSERT (or upsert) statement for every row of frame, _ROWS_PER_BATCH at a
    time. On SQLite through the driver's own executemany: SQLAlchemy's work per row took as
    long as SQLite's. (On PostgreSQL, SQLAlchemy already sends many rows at once.)"""
    costs.count(costs.WAREHOUSE_ROWS, len(frame))
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        compiled = statement.compile(dialect=connection.dialect, column_keys=list(frame.columns))
    for start in range(0, len(frame), _ROWS_PER_BATCH):
        batch = frame.iloc[start : start + _ROWS_PER_BATCH]
        if sqlite:
            rows = _driver_rows(batch, table, connection.dialect, compiled.positiontup)
            connection.exec_driver_sql(str(compiled), rows)
        else:
            connection.execute(statement, _records(batch, table))


class Warehouse(dg.ConfigurableResource):
    """The SQL warehouse (`prices`, `universe`, `price_predictions`, `model_scores`,
    `drift_checks`, `news_sentiment`, `asset_costs`)."""

    url: str
    read_only: bool = False
    """Readers (the dashboard) open the warehouse so that the database itself refuses writes."""

    @property
    def engine(self) -> sa.Engine:
        return _read_only_engine(self.url) if self.read_only else _engine(self.url)

    def replace_dates(self, table: sa.Table, frame: pd.DataFrame, dates: pd.DatetimeIndex) -> int:
        """Replace every row of the given dates with frame's rows, in one transaction."""
        date_column = table.c["date"]
        day_list = [d.date() for d in dates]
        with self.engine.begin() as connection:
            for start in range(0, len(day_list), _CHUNK):
                chunk = day_list[start : start + _CHUNK]
                connection.execute(table.delete().where(date_column.in_(chunk)))
            _insert_many(connection, table.insert(), table, frame)
        return len(frame)

    def upsert(self, table: sa.Table, frame: pd.DataFrame, keys: list[str]) -> int:
        """Insert rows, updating those whose keys already exist, in one transaction."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ValueError(
                f"warehouse {self.engine.url!r}: upsert supports SQLite and PostgreSQL"
            )
        statement = insert(table)
        updates = {c: statement.excluded[c] for c in frame.columns if c not in keys}
        # One statement, executed for many rows: compiled once, not once per batch.
        statement = statement.on_conflict_do_update(index_elements=keys, set_=updates)
        # In the order of the keys' unique index, the database appends to it rather than
        # seeking all over it: a quarter less time for a million rows on SQLite.
        frame = frame.sort_values(keys, kind="stable")
        with self.engine.begin() as connection:
            _insert_many(connection, statement, table, frame)
        return len(frame)

    def append(self, table: sa.Table, frame: pd.DataFrame) -> int:
        with self.engine.begin() as connection:
            _insert_many(connection, table.insert(), table, frame)
        return len(frame)

    def read(self, query: sa.Select | str) -> pd.DataFrame:
        statement = sa.text(query) if isinstance(query, str) else query
        with self.engine.connect() as connection:
            return pd.read_sql(statement, connection)


def tables_markdown() -> str:
    """Every warehouse table's columns as markdown, from the table definitions above (the
    source of docs/warehouse.md: `python -m stock_assets.storage.warehouse`)."""
    lines = [
        "# Warehouse tables",
        "",
        "Generated from `stock_assets/storage/warehouse.py` by "
        "`python -m stock_assets.storage.warehouse > docs/warehouse.md`; a test keeps it current.",
    ]
    for table in metadata.sorted_tables:
        keys = [c.name for c in table.primary_key.columns]
        unique = [
            ", ".join(c.name for c in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ]
        lines += ["", f"## `{table.name}`", ""]
        if keys:
            lines.append(f"Primary key: {', '.join(keys)}.  ")
        if unique:
            lines.append(f"Unique: {'; '.join(unique)}.  ")
        lines += ["", "| column | type | null | description |", "|---|---|---|---|"]
        lines += [
            f"| `{c.name}` | {str(c.type).lower()} | {'yes' if c.nullable else 'no'} | "
            f"{c.comment or ''} |"
            for c in table.columns
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(tables_markdown(), end="")
