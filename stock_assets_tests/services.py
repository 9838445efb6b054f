"""Handles on the real services tests talk to (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stock_assets.storage.object_store import ObjectStore

S3_CREDENTIALS = {
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "region_name": "us-east-1",
}


class RabbitMQCtlError(RuntimeError):
    """rabbitmqctl failed; the message says how and what it needs."""


def rabbitmqctl(*args: str) -> None:
    import subprocess

    try:
        done = subprocess.run(
            ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise RabbitMQCtlError(f"rabbitmqctl {args[0]}: {error}") from error
    if done.returncode != 0:
        raise RabbitMQCtlError(
            f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}; "
            "RabbitMQ must run on 127.0.0.1:5672 (rabbitmq-server -detached) and this user "
            "may manage it (root or the rabbitmq group)"
        )


@contextmanager
def private_vhost(prefix: str) -> Iterator[str]:
    """A vhost of our own on the machine's RabbitMQ (127.0.0.1:5672), open to guest, deleted
    afterwards with everything in it: yields its AMQP URL."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        try:
            rabbitmqctl("delete_vhost", vhost)
        except RabbitMQCtlError:
            pass


@dataclass(frozen=True)
class Bucket:
    """A bucket of the moto server, with a plain boto3 client to look behind the store."""

    name: str
    endpoint: str
    client: Any

    def keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def store(self, prefix: str = "") -> ObjectStore:
        from dagster_aws.s3 import S3Resource

        from stock_assets.storage.s3_store import S3ObjectStore

        s3 = S3Resource(endpoint_url=self.endpoint, **S3_CREDENTIALS)
        return S3ObjectStore(s3=s3, bucket=self.name, prefix=prefix)


def queue_depth(url: str, queue: str) -> int:
    """Messages waiting in a queue of the broker at `url`."""
    from stock_assets.streaming import rabbitmq

    connection = rabbitmq.connect(url)
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def production_setting(name: str) -> str:
    """A value as `.env.example`, the production settings, gives it."""
    example = Path(__file__).resolve().parents[1] / ".env.example"
    for line in example.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise KeyError(f"{example} does not set {name}")


POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@contextmanager
def throwaway_database(prefix: str = "stock_assets_test") -> Iterator[str]:
    """A new PostgreSQL database on 127.0.0.1:5432, dropped (with its connections) afterwards."""
    import pytest
    import sqlalchemy as sa

    from stock_assets.storage.warehouse import _engine

    admin = sa.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error.orig}); "
            f"start it with: {POSTGRES_START}",
            pytrace=False,
        )
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        _engine(url).dispose()
        _engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _free_pair(offset: int) -> int:
    """A port p below 65536 - offset such that p and p + offset are both free right now."""
    import random
    import socket

    while True:
        port = random.randint(20_000, 65_535 - offset)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now, below the kernel's ephemeral range.

    A port the kernel hands out for bind(0) comes from the range it also takes outgoing
    connections' source ports from: with the suite's thousands of connections, one took a
    private RabbitMQ's TLS port before the node could bind it (eaddrinuse, and the test waited
    on a listener that never came)."""
    import random
    import socket

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(low // 2, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found between {low // 2} and {low} on 127.0.0.1")


def keep_sigterm_for_children() -> None:
    """Give SIGINT its default handler where it is ignored (a suite run in the background).

    A run in-process gives SIGTERM whatever handles SIGINT (dagster's interrupts module): with
    SIGINT ignored, after a test's first run SIGTERM would be ignored too, in this process and
    in every server a later test starts, which would then outlast its SIGTERM and be killed
    only after the grace period, 10-15 s later each."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_session(process: Any, grace: float, whole_group: bool = True) -> None:
    """Stop a process started in a session of its own, and everything in that session: SIGTERM
    (to the whole group, or to the leader alone for servers that pass it on, as `dagster dev`
    does), then SIGKILL to whatever is left after `grace` seconds."""
    import signal
    import subprocess

    try:
        if whole_group:
            os.killpg(process.pid, signal.SIGTERM)
        elif process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_until_up(up: Any, process: Any, log_path: Path, what: str, timeout: float) -> None:
    """Poll `up()` until it is true; fail with the log's tail if the process exits first or the
    time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while not up():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.3)


@contextmanager
def server_process(
    command: list[str], env: dict[str, str], ready_url: str, log_path: Path, timeout: float = 180
) -> Iterator[Any]:
    """A server started in its own session, yielded once `ready_url` answers; stopped by its
    PID afterwards (SIGTERM, then SIGKILL to its process group after 15 s)."""
    import subprocess
    import urllib.request

    import pytest

    def up() -> bool:
        try:
            urllib.request.urlopen(ready_url, timeout=2).close()
            return True
        except OSError:
            return False

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_until_up(up, process, log_path, f"{command[0]} (at {ready_url})", timeout)
        except RuntimeError as error:
            pytest.fail(str(error), pytrace=False)
        yield process
    finally:
        # Whatever it started in its session goes with it.
        stop_session(process, grace=15, whole_group=False)


def _certificates(folder: Path) -> Path:
    """A CA and a server certificate for localhost and 127.0.0.1 signed by it (openssl); the
    CA's certificate, which a client trusts."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=stock_assets test CA", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "server.pem")  # fmt: skip
    return folder / "ca.pem"


class PrivateRabbitMQ:
    """A RabbitMQ node of the test's own (its node name, ports and data folder), which a fault
    test may stop and start again; the machine's broker is never touched. Stopped by its PID."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self, root: Path, tls: bool = False) -> None:
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        config = ["loopback_users = none"]
        # With tls, an AMQPS listener too, on a certificate signed by a CA of the test's own.
        self.tls_port = free_port() if tls else None
        if tls:
            self.ca = _certificates(root / "tls")
            config += [
                f"listeners.ssl.default = {self.tls_port}",
                f"ssl_options.cacertfile = {self.ca}",
                f"ssl_options.certfile = {root / 'tls' / 'server.pem'}",
                f"ssl_options.keyfile = {root / 'tls' / 'server.key'}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        (root / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"stock_assets_test_{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
        }
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60) -> None:
        import subprocess

        import pika

        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.SERVER], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

        def up() -> bool:
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return True
            except pika.exceptions.AMQPError:
                return False

        wait_until_up(up, self.process, self.root / "server.log", "private RabbitMQ", timeout)

    def stop(self) -> None:
        """SIGTERM to the node's process group (a clean shutdown), SIGKILL after 30 s."""
        if self.process is not None:
            stop_session(self.process, grace=30)
            self.process = None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (its data folder and port, run as user postgres),
    which a fault test may stop and start again; the machine's server is never touched. Its
    folder is under /tmp, where user postgres may go (pytest's folders are root's own)."""

    def __init__(self) -> None:
        import glob
        import tempfile

        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.root = Path(tempfile.mkdtemp(prefix="stock-assets-pg-"))
        self.data = self.root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        import subprocess

        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr or done.stdout}")

    def init(self) -> None:
        import shutil

        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-N")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no shutdown checkpoint, open transactions simply vanish."""
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                              "stop")  # fmt: skip

    def remove(self) -> None:
        import shutil

        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateSeaweedFS:
    """An S3 server (SeaweedFS `weed mini`) of the test's own: its ports and data folder, on
    loopback, telemetry off. It keeps its objects across a restart, as moto does not. Stopped
    by its PID."""

    def __init__(self, root: Path, bucket: str) -> None:
        import sys

        self.weed = Path(sys.executable).with_name("weed")
        self.root, self.bucket = root, bucket
        root.mkdir(parents=True, exist_ok=True)
        # Every port weed mini opens, each free now; S3's gRPC port, which cannot be set, is
        # its HTTP port + 10000, so that pair is chosen free together.
        self.ports = {"s3.port": _free_pair(10_000)}  # flag -> port
        for name in ("master", "volume", "filer", "admin"):
            self.ports[f"{name}.port"] = free_port()
            self.ports[f"{name}.port.grpc"] = free_port()
        self.ports["debug.port"] = free_port()
        self.ports["webdav.port"] = free_port()
        self.process: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout: float = 60) -> None:
        import subprocess
        import urllib.error
        import urllib.request

        command = [
            str(self.weed), "mini", f"-dir={self.root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-bucket={self.bucket}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]  # fmt: skip
        env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"]}  # fmt: skip
        with (self.root / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def up() -> bool:
            try:
                urllib.request.urlopen(self.endpoint, timeout=2).close()
            except urllib.error.HTTPError:  # answering (403 without credentials): up
                pass
            except OSError:
                return False
            return True

        wait_until_up(up, self.process, self.root / "weed.log", "SeaweedFS", timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_session(self.process, grace=15)
            self.process = None

    def store(self) -> ObjectStore:
        from dagster_aws.s3 import S3Resource

        from stock_assets.storage.s3_store import S3ObjectStore

        s3 = S3Resource(endpoint_url=self.endpoint, **S3_CREDENTIALS)
        return S3ObjectStore(s3=s3, bucket=self.bucket)
