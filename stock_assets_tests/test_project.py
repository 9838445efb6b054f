"""The project as Dagster's own tooling sees it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_dg_check_defs_loads_every_definition():
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"VIRTUAL_ENV": sys.prefix, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    checked = subprocess.run(
        [str(bin_dir / "dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_a_server_started_after_an_in_process_run_still_stops_on_sigterm():
    """Run in the background, the suite starts with SIGINT ignored; Dagster then gives SIGTERM
    the same during a run, and every later child would ignore it. conftest.py's guard keeps
    SIGTERM for them."""
    import signal

    import dagster as dg

    from stock_assets_tests.services import keep_sigterm_for_children

    @dg.asset
    def one() -> int:
        return 1

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
        keep_sigterm_for_children()
        assert dg.materialize([one]).success
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        child.terminate()
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
