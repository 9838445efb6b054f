"""What a materialization costs: usage measured while the body runs, priced at unit prices."""

import pandas as pd
import pytest

from stock_assets import costs
from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.storage.warehouse import Warehouse, news_sentiment


def test_a_meter_counts_what_the_adapters_report_while_it_is_open(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    store.put_bytes("outside/meter", b"x" * 10)  # no meter open: counted nowhere
    with costs.metered() as meter:
        store.put_bytes("a/one", b"x" * 100)
        store.put_bytes("a/two", b"y" * 50)
        assert store.get_bytes("a/one") == b"x" * 100
        store.list_keys("a/")
        rows = pd.DataFrame(
            {
                "ticker": ["AAPL", "MSFT"],
                "date": pd.to_datetime(["2024-01-02"] * 2),
                "news_count": [1, 2],
                "news_sentiment": [0.1, -0.2],
            }
        )
        warehouse.append(news_sentiment, rows)
        sum(i * i for i in range(200_000))  # some CPU
    usage = meter.usage()
    assert (usage.objects_written, usage.bytes_written) == (2, 150)
    assert (usage.objects_read, usage.bytes_read, usage.listings) == (1, 100, 1)
    assert usage.warehouse_rows == 2
    assert usage.cpu_s > 0 and usage.wall_s >= usage.cpu_s * 0.5 and usage.peak_rss_bytes > 2**20
    warehouse.engine.dispose()


def test_usage_is_priced_at_the_unit_prices_and_shared_per_partition():
    prices = costs.UnitPrices()
    hour = costs.Usage(
        wall_s=3600, cpu_s=3600, peak_rss_bytes=int(2e9), objects_written=2000, objects_read=1000,
        listings=1000, bytes_written=int(1e9), mlflow_artifact_bytes=int(1e9),
    )  # fmt: skip
    priced = costs.dollars(hour, prices)
    # One vCPU-hour, 2 GB for an hour, 2 GB kept a month, 3,000 writes and 1,000 reads.
    assert priced["compute_usd"] == pytest.approx(0.04048 + 2 * 0.004445)
    assert priced["storage_usd"] == pytest.approx(2 * 0.023)
    assert priced["requests_usd"] == pytest.approx(3 * 0.005 + 0.0004)
    assert priced["total_usd"] == pytest.approx(
        sum(v for k, v in priced.items() if k != "total_usd")
    )
    day = hour.share(4)
    assert day.cpu_s == 900 and day.objects_written == 500
    assert day.peak_rss_bytes == hour.peak_rss_bytes  # the run's peak, not a quarter of it
    dearer = costs.dollars(hour, costs.UnitPrices(vcpu_hour=1.0))
    assert dearer["compute_usd"] > priced["compute_usd"]


def test_unit_prices_are_settings(monkeypatch):
    from stock_assets.config import load_settings

    monkeypatch.setenv("STOCK_ASSETS_PRICE_VCPU_HOUR", "0.1")
    assert load_settings().unit_prices.vcpu_hour == 0.1
    monkeypatch.setenv("STOCK_ASSETS_PRICE_GB_HOUR", "cheap")
    with pytest.raises(ValueError, match="STOCK_ASSETS_PRICE_GB_HOUR='cheap'"):
        load_settings()


def _cost_rows() -> pd.DataFrame:
    day = pd.Timestamp("2024-01-02")
    rows = pd.DataFrame(
        [
            # A backfill spreads its fixed costs over 250 sessions; the live refresh does not.
            ("price_features", day, 250, 0.25, 25.0),
            ("price_features", day, 1, 0.004, 1.0),
            ("price_features", day, 1, 0.006, 2.0),
            ("raw_prices", day, 100, 0.2, 10.0),
            ("price_model", None, 1, 0.03, 60.0),
        ],
        columns=["asset", "first_partition", "partitions", "total_usd", "cpu_s"],
    )
    # Compute, storage and requests in proportions 0.7, 0.2, 0.1.
    return rows.assign(
        compute_usd=rows["total_usd"] * 0.7,
        storage_usd=rows["total_usd"] * 0.2,
        requests_usd=rows["total_usd"] * 0.1,
    )


def test_the_cost_table_prefers_one_session_runs_and_prices_a_month_by_cadence():
    from stock_assets.reporting.costs import SESSIONS_PER_MONTH, WEEKS_PER_MONTH, cost_table

    table = cost_table(_cost_rows()).set_index("asset")
    assert table.loc["price_features", "per day usd"] == pytest.approx(0.005)
    assert table.loc["price_features", "basis"] == "2 one-session runs"
    assert table.loc["raw_prices", "per day usd"] == pytest.approx(0.002)
    assert "share of 1 range runs" in table.loc["raw_prices", "basis"]
    assert table.loc["raw_prices", "per month usd"] == pytest.approx(0.002 * SESSIONS_PER_MONTH)
    assert table.loc["price_model", "per month usd"] == pytest.approx(0.03 * WEEKS_PER_MONTH)
    assert table.loc["total", "per month usd"] == pytest.approx(
        table.drop(index="total")["per month usd"].sum()
    )


def test_a_projection_grows_each_part_as_measured_not_in_proportion():
    from stock_assets.reporting.costs import cost_table, growth, projection

    # Step seconds at three universe sizes, as benchmarks/batch_graph.py records them: raw
    # prices nearly all fixed cost, the features growing with the tickers.
    benchmark = {
        "sizes": [
            {"tickers": n, "assets": {"raw_prices": 3 + 0.001 * n, "price_features": 1 + 0.1 * n}}
            for n in (5, 50, 500)
        ]
    }
    fits = growth(benchmark)
    assert fits["price_features"] == pytest.approx((1.0, 0.1))
    rows = _cost_rows()
    same = projection(rows, fits, 5, 5, 1).set_index("asset")
    assert same["projected per month usd"].to_numpy() == pytest.approx(
        same["per month usd now"].to_numpy()
    )
    bigger = projection(rows, fits, 5, 500, 1).set_index("asset")
    now = cost_table(rows).set_index("asset")["per month usd"]
    # 100x the tickers: the features' compute grows about 34x (1 + 0.1 x 500 over 1 + 0.5),
    # raw prices' barely; storage 100x; requests not at all.
    assert bigger.loc["price_features", "compute growth"] == pytest.approx(51 / 1.5)
    assert bigger.loc["raw_prices", "compute growth"] == pytest.approx(3.5 / 3.005)
    expected = now["price_features"] * (0.7 * 51 / 1.5 + 0.2 * 100 + 0.1)
    assert bigger.loc["price_features", "projected per month usd"] == pytest.approx(expected)
    # Far less than 100x: the fixed cost does not grow with the universe.
    assert bigger.loc["raw_prices", "projected per month usd"] < 0.25 * 100 * now["raw_prices"]
    # Minute bars: 390 bars a session for each ticker.
    minutes = projection(rows, fits, 5, 500, 390).set_index("asset")
    assert minutes.loc["price_features", "compute growth"] == pytest.approx(
        (1 + 0.1 * 500 * 390) / 1.5
    )
    # The model was not timed by this benchmark: its compute stays as measured.
    assert minutes.loc["price_model", "compute growth"] == pytest.approx(1.0)
