"""HTTP for market-data providers: a request-rate budget, and backing off on their signals.

A provider says "slow down" with HTTP 429 and usually a `Retry-After` header (seconds or an
HTTP date); a 5xx or a dropped connection is worth a few more tries. Anything else (a 4xx)
will not get better by asking again and is raised at once, naming the request.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

# Attempts per request before it is given up (the poll then retries it next time).
MAX_ATTEMPTS = 5
# Without a Retry-After, waits double from this; a provider asking for longer than
# MAX_WAIT_SECONDS is not waited for within one poll.
FIRST_BACKOFF_SECONDS = 1.0
MAX_WAIT_SECONDS = 120.0


class ProviderError(RuntimeError):
    """A request failed for good; the message names the request and what came back."""


class MalformedPayload(ProviderError):
    """The provider answered, but not with what its API reference documents."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header's wait: delta-seconds or an HTTP date (RFC 9110), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Http:
    """GETs JSON from one provider's base URL within `requests_per_minute`, spacing the
    requests evenly, and retrying 429s, 5xx and dropped connections."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        requests_per_minute: float,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.spacing = 60.0 / requests_per_minute
        self.timeout = timeout
        self.sleep, self.clock, self.log = sleep, clock, log
        self.requests = 0
        self._next_at = -float("inf")

    def _wait_for_budget(self) -> None:
        wait = self._next_at - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._next_at = self.clock() + self.spacing

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer to GET `path` (absolute URLs are taken as they are)."""
        url, response = self._get(path, params)
        try:
            return response.json()
        except ValueError as error:
            raise MalformedPayload(
                f"GET {url}: the answer is not JSON ({error}): {response.text[:200]!r}"
            ) from error

    def get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        """The answer's body to GET `path`, as it came."""
        return self._get(path, params)[1].content

    def _get(self, path: str, params: dict[str, Any] | None) -> tuple[str, requests.Response]:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        backoff = FIRST_BACKOFF_SECONDS
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._wait_for_budget()
            self.requests += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__}: {error}"
                wait = backoff
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}: {response.text[:200]!r}"
                    asked = retry_after_seconds(response.headers.get("Retry-After"))
                    wait = backoff if asked is None else asked
                    if wait > MAX_WAIT_SECONDS:
                        raise ProviderError(
                            f"GET {url}: {problem}; Retry-After asks for {wait:.0f} s, more "
                            f"than the {MAX_WAIT_SECONDS:.0f} s one poll waits"
                        )
                elif status >= 400:
                    raise ProviderError(f"GET {url}: HTTP {status}: {response.text[:300]!r}")
                else:
                    return url, response
            if attempt < MAX_ATTEMPTS:
                self.log(f"GET {url}: {problem}; attempt {attempt + 1} in {wait:.1f} s")
                self.sleep(wait)
                # A provider's own wait restarts the budget's spacing after it.
                self._next_at = self.clock()
                backoff = min(backoff * 2, MAX_WAIT_SECONDS)
        raise ProviderError(f"GET {url}: gave up after {MAX_ATTEMPTS} attempts; last: {problem}")
