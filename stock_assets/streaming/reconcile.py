"""Landed batches as the source of truth: which ones still need a refresh run.

A sensor lands a batch, then asks Dagster for a run. The request can be lost (the daemon dies
after the broker's ack and before it stores the request) and the run can fail or be killed.
Either way the batch's bars are stored, so nothing is lost as long as someone asks again:
`plan` decides, from each landed batch's runs, which batches to request again and how far
every batch is settled (succeeded, or given up after `max_runs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

# How a batch id begins: the UTC time it landed (`rabbitmq.new_batch_id`).
BATCH_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class BatchRuns:
    """What Dagster knows of the runs made for one batch."""

    made: int = 0  # runs of any status
    succeeded: bool = False
    in_flight: bool = False  # queued, starting or started with its process alive
    last_ended: pd.Timestamp | None = None


@dataclass
class Plan:
    requests: list[tuple[dict, int]] = field(default_factory=list)  # (batch, attempt)
    # Every batch up to this one is settled: the next tick lists only those after it.
    settled_through: str = ""
    given_up: list[str] = field(default_factory=list)
    waiting: int = 0  # unsettled batches not requested this time


def landed_at(batch_id: str) -> pd.Timestamp:
    """When a batch landed (UTC, without zone), from its id (`rabbitmq.new_batch_id`)."""
    return pd.to_datetime(batch_id.split("-", 1)[0], format=BATCH_TIME_FORMAT)


def plan(
    batches: list[dict],
    runs: dict[str, BatchRuns],
    now: pd.Timestamp,
    settle_seconds: float,
    max_runs: int,
    settled_through: str = "",
) -> Plan:
    """Which of `batches` (oldest first, as `ObjectStore.landed_batches` lists them) to request
    again, with the attempt number of each request.

    A batch is left alone while it is younger than `settle_seconds` (its own sensor is still
    asking for its run), while a run for it is in flight, and for `settle_seconds` after its
    last run ended (Dagster's run retries act first). It is requested again when no run for it
    succeeded, up to `max_runs` runs in all; then it is given up, and reported.
    """
    result = Plan(settled_through=settled_through)
    settled_so_far = True
    grace = pd.Timedelta(seconds=settle_seconds)
    for batch in batches:
        batch_id = batch["batch_id"]
        state = runs.get(batch_id, BatchRuns())
        settled = state.succeeded or (not state.in_flight and state.made >= max_runs)
        if settled and not state.succeeded:
            result.given_up.append(batch_id)
        if not settled:
            recent = now - landed_at(batch_id) < grace or (
                state.last_ended is not None and now - state.last_ended < grace
            )
            if state.in_flight or recent:
                result.waiting += 1
            else:
                result.requests.append((batch, state.made + 1))
        settled_so_far = settled_so_far and settled
        if settled_so_far:
            result.settled_through = batch_id
    return result


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (a zombie, killed and not yet reaped by
    its parent, is not)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:  # no /proc here: ask the kernel whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
