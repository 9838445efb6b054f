"""`make chaos` prints what the fault tests recorded, one row per fault."""

from stock_assets_tests import chaos


def test_recorded_faults_print_as_one_table(tmp_path, monkeypatch, capsys):
    report = tmp_path / "chaos.jsonl"
    monkeypatch.setenv(chaos.REPORT, str(report))
    chaos.record("RabbitMQ restarted", 500, 500, 0, 0, None, 5.14)
    chaos.record("daemon killed", 80, 79, 1, 0, 2, 37.0)
    assert chaos.main([str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| fault | bars published | landed | lost | duplicated |")
    assert lines[2] == "| RabbitMQ restarted | 500 | 500 | 0 | 0 | n/a | 5.1 |"
    assert lines[3] == "| daemon killed | 80 | 79 | 1 | 0 | 2 | 37.0 |"
    assert chaos.main([str(tmp_path / "missing.jsonl")]) == 1
