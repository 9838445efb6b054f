"""The serving supervisor's retries, on a real process and real HTTP: a registry that does not
answer yet and a server whose first start fails do not end serving."""

import signal
import sys
import threading
import urllib.request

from stock_assets import serving
from stock_assets_tests.services import free_port

# Fails the first time (leaves a marker), then answers /ping like the scoring server.
SERVER = """
import http.server, pathlib, sys
marker = pathlib.Path(sys.argv[1])
if not marker.exists():
    marker.write_text("failed once")
    sys.exit(3)

class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"pong")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), Ping).serve_forever()
"""


def test_the_first_read_and_the_first_start_are_retried(tmp_path, capsys):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", SERVER, str(tmp_path / "marker"), str(port)]
    server = serving.ScoringServer(command, {}, url)
    answered = threading.Event()
    calls = []

    def champion_version() -> str:
        calls.append(len(calls))
        if len(calls) <= 2:
            raise ConnectionError("registry at 127.0.0.1:5000 refused the connection")
        if server.running():
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                if response.status == 200:
                    answered.set()
                    raise KeyboardInterrupt  # as SIGTERM does: stop serving
        return "7"

    before = signal.getsignal(signal.SIGTERM)
    assert serving.supervise(champion_version, server, poll_seconds=0.1) == 0
    assert answered.is_set()
    log = capsys.readouterr().out
    assert log.count("could not read the champion alias") == 2
    assert "the scoring server exited with code 3; trying again" in log
    assert "serving version 7" in log
    assert not server.running()  # stopped on the way out
    # The process that called it gets its own signal handling back.
    assert signal.getsignal(signal.SIGTERM) is before
