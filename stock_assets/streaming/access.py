"""The RabbitMQ users the production settings name, created as `make services` runs.

The platform's user may configure, write and read only its own exchange and queues (plus the
default exchange, through which dead letters are republished), on the vhost its URL names.
Celery's user, when scale-out is on, gets a vhost of its own: Celery names its queues itself.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from stock_assets.streaming.rabbitmq import Topology

DEFAULT_EXCHANGE = "amq.default"
EVERYTHING = ".*"


@dataclass(frozen=True)
class BrokerUser:
    name: str
    password: str
    vhost: str

    @classmethod
    def from_url(cls, url: str) -> BrokerUser:
        parts = urlsplit(url)
        if not parts.username or parts.password is None:
            raise ValueError(
                f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path}: the URL "
                "names no user and password (amqp://USER:PASSWORD@HOST:PORT/VHOST)"
            )
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(unquote(parts.username), unquote(parts.password), vhost)


def platform_permissions(*topologies: Topology) -> tuple[str, str, str]:
    """(configure, write, read) patterns: the topologies' names and nothing else."""
    names = list(
        dict.fromkeys(name for t in topologies for name in (t.exchange, t.queue, t.dead_queue))
    )
    own = _exactly(names)
    return own, _exactly([*names, DEFAULT_EXCHANGE]), own


def _exactly(names: Sequence[str]) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def ensure_user(
    user: BrokerUser, permissions: tuple[str, str, str], rabbitmqctl: str = "rabbitmqctl"
) -> list[str]:
    """Create the user's vhost and the user if missing, set its password and permissions
    (idempotent); what was done, for the log. Needs rabbitmqctl on the broker's machine."""
    if user.name == "guest":
        raise ValueError(
            "the settings use RabbitMQ's guest user: production settings name a user of their "
            "own (STOCK_ASSETS_AMQP_URL=amqp://USER:PASSWORD@HOST:5672/VHOST, see .env.example)"
        )

    def ctl(*args: str) -> str:
        done = subprocess.run(
            [rabbitmqctl, "--quiet", *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {args[0]} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done.stdout

    done = []
    if user.vhost not in ctl("list_vhosts", "--no-table-headers", "name").split("\n"):
        ctl("add_vhost", user.vhost)
        done.append(f"created vhost {user.vhost}")
    users = [line.split("\t")[0] for line in ctl("list_users", "--no-table-headers").split("\n")]
    if user.name in users:
        ctl("change_password", user.name, user.password)
    else:
        ctl("add_user", user.name, user.password)
        done.append(f"created user {user.name}")
    ctl("set_permissions", "-p", user.vhost, user.name, *permissions)
    done.append(f"{user.name} on vhost {user.vhost}: configure {permissions[0]}, "
                f"write {permissions[1]}, read {permissions[2]}")  # fmt: skip
    return done
