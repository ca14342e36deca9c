"""HTTP for the ``openai`` backend: retries within a time budget, and replies read with care.

A request that gets 429, 408/409/425, a 5xx gateway or server error, a timeout or a broken
connection is sent again until the server answers or the retry budget (``retry_budget_s`` seconds,
counted from the request's first failure) is spent. The server's ``Retry-After`` (seconds or an
HTTP date) says how long to wait; without it waits grow exponentially with jitter. Either way no
wait goes past the end of the budget. When the budget is spent the error says what the server last
answered and which option gives it longer.

A 200 reply is read up to ``max_reply_bytes`` and must be a JSON object; anything else (truncated
JSON, an HTML page, a huge body) is a :class:`MalformedReply` that quotes the server's text, which
the backend turns into an ``invalid`` result for that one prompt.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from culture_probe.errors import CultureProbeError

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: how much of a server's text an error or an invalid result quotes
QUOTE_CHARS = 300
DEFAULT_RETRY_BUDGET_S = 180.0
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024


class RequestFailed(CultureProbeError):
    """A request that retrying cannot fix: the server is gone, or refused it outright."""


class RequestRefused(RequestFailed):
    """The server answered a status that no retry changes (400, 404, 422, ...): it refused it."""


class MalformedReply(CultureProbeError):
    """A successful status whose body is not the JSON the API promises; the message quotes it."""


class ReplyTooLarge(MalformedReply):
    """A successful reply longer than ``max_reply_bytes``: the limit, not the address, is at issue."""


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The first ``limit`` characters of a server's text on one line, marked when cut.

    Example:
        >>> quote("<html>\\n  <body>busy</body>\\n</html>")
        "'<html> <body>busy</body> </html>'"
        >>> quote("x" * 10, limit=4)
        "'xxxx' (... 10 characters)"
    """
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return repr(flat)
    return f"{flat[:limit]!r} (... {len(text)} characters)"


def checked_base_url(url: str) -> str:
    """``url`` without a trailing slash, once it is an http(s) address with a host.

    Example:
        >>> checked_base_url("http://localhost:8000/v1/")
        'http://localhost:8000/v1'
        >>> checked_base_url("localhost:8000/v1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        culture_probe.errors.CultureProbeError: base_url 'localhost:8000/v1' is not an http(s) ...
    """
    try:
        parsed = httpx.URL(url)
        fine = parsed.scheme in ("http", "https") and bool(parsed.host)
    except (httpx.InvalidURL, ValueError, TypeError):
        fine = False
    if not fine:
        raise CultureProbeError(
            f"base_url {url!r} is not an http(s) address; expected one like "
            "http://localhost:8000/v1 (--option base_url=URL, or the environment variable "
            "CULTURE_PROBE_BASE_URL or OPENAI_BASE_URL)"
        )
    return url.rstrip("/")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds; None when absent or unreadable.

    Args:
        value: the header, as delta-seconds or as an HTTP date.
        now: the current time as a Unix timestamp (default: the clock).

    Example:
        >>> retry_after_seconds("2.5")
        2.5
        >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0)
        30.0
        >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412600.0)
        0.0
        >>> retry_after_seconds("soon") is None
        True
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failing request is retried, and how long each wait is.

    Attributes:
        budget_s: seconds a request may keep failing, counted from its first failure.
        backoff: the first wait without ``Retry-After``; each later one doubles, up to ``max_wait``.
        max_wait: the longest wait of our own schedule (a server's ``Retry-After`` may ask more).
        max_retries: a cap on the retries of one request besides the budget (0: no cap).
        retry_refused: whether a refused connection is retried (not at start-up, where it is
            almost always a wrong ``base_url``).
    """

    budget_s: float = DEFAULT_RETRY_BUDGET_S
    backoff: float = 0.5
    max_wait: float = 30.0
    max_retries: int = 0
    retry_refused: bool = True

    def wait_before(
        self, attempt: int, retry_after: str | None = None, remaining: float = math.inf
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), at most ``remaining``."""
        asked = retry_after_seconds(retry_after)
        if asked is None:
            ceiling = min(self.max_wait, self.backoff * 2.0**attempt)
            # jitter keeps many clients that failed together from retrying together
            asked = ceiling * (0.5 + random.random() / 2)
        return max(0.0, min(asked, remaining))


class RetryStats:
    """Thread-safe totals of the retries a backend made: how many, how long, and why."""

    def __init__(self) -> None:
        self.retries = 0
        self.wait_s = 0.0
        self.causes: Counter[str] = Counter()
        self.malformed = 0
        self._lock = threading.Lock()

    def record_retry(self, cause: str, waited: float) -> None:
        with self._lock:
            self.retries += 1
            self.wait_s += waited
            self.causes[cause] += 1

    def record_malformed(self) -> None:
        with self._lock:
            self.malformed += 1

    def as_options(self) -> dict[str, Any]:
        """The totals as manifest options (the causes only when there were retries)."""
        with self._lock:
            options: dict[str, Any] = {
                "retries": self.retries,
                "retry_wait_s": round(self.wait_s, 3),
                "malformed_replies": self.malformed,
            }
            if self.causes:
                options["retry_causes"] = dict(sorted(self.causes.items()))
            return options


@dataclass(frozen=True)
class Failure:
    """One failed attempt: why (``HTTP 429``, ``ConnectError``), what the server said, if anything."""

    cause: str
    said: str = ""
    retry_after: str | None = None
    transient: bool = True

    def describe(self) -> str:
        return f"{self.cause}: {quote(self.said)}" if self.said else self.cause


@dataclass
class Exchange:
    """What one call needs besides the request: the client, the policy, the shared state."""

    client: httpx.Client
    policy: RetryPolicy
    stats: RetryStats
    #: set when another request of the batch gave up: waiting requests stop at once
    stop: threading.Event
    #: called before every attempt; raises when the run's request budget is spent
    spend: Callable[[], None]
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES


def send_json(
    exchange: Exchange, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One API call, retried within the policy's budget; the reply's JSON object.

    Raises:
        RequestFailed: the server refused the request, or kept failing until the budget was spent.
        MalformedReply: the server answered 2xx with a body that is not a JSON object.
    """
    policy = exchange.policy
    first_failure: float | None = None
    attempt = 0
    while True:
        exchange.spend()
        outcome = _attempt(exchange, method, path, body)
        if isinstance(outcome, dict):
            return outcome
        where = f"{method} {exchange.client.base_url}{path.lstrip('/')}"
        if not outcome.transient:
            if outcome.cause.startswith("HTTP"):
                raise RequestRefused(f"{where} answered {outcome.describe()}")
            raise RequestFailed(f"{where} failed with {outcome.describe()}")
        now = time.monotonic()
        first_failure = now if first_failure is None else first_failure
        remaining = policy.budget_s - (now - first_failure)
        if remaining <= 0 or (policy.max_retries and attempt >= policy.max_retries):
            raise RequestFailed(_gave_up(where, outcome, attempt, now - first_failure, policy))
        delay = policy.wait_before(attempt, outcome.retry_after, remaining)
        if exchange.stop.wait(delay):
            raise RequestFailed(f"{where}: stopped retrying because another request gave up")
        exchange.stats.record_retry(outcome.cause.split(":")[0], delay)
        attempt += 1


def _gave_up(
    where: str, failure: Failure, retries: int, elapsed: float, policy: RetryPolicy
) -> str:
    if policy.max_retries and retries >= policy.max_retries:
        option = f"--option max_retries=N (now {policy.max_retries}; 0 lets the budget decide)"
    else:
        option = f"--option retry_budget_s=SECONDS (now {policy.budget_s:g})"
    return (
        f"{where} still failed after {retries} retries over {elapsed:.1f} s; last answer: "
        f"{failure.describe()}. To wait longer, raise {option}"
    )


def _attempt(
    exchange: Exchange, method: str, path: str, body: dict[str, Any] | None
) -> dict[str, Any] | Failure:
    """Send once: the JSON object of a 2xx reply, or the failure to retry or report."""
    try:
        with exchange.client.stream(method, path, json=body) as response:
            raw = _read_capped(response, exchange.max_reply_bytes)
    except httpx.ConnectError as error:
        return Failure(f"ConnectError: {error}", transient=exchange.policy.retry_refused)
    except httpx.UnsupportedProtocol as error:
        return Failure(f"UnsupportedProtocol: {error}", transient=False)
    except httpx.TransportError as error:
        # a timeout, a reset, a reply cut short: the next attempt may well get through
        return Failure(f"{type(error).__name__}: {error}")
    if response.status_code >= 400:
        return Failure(
            f"HTTP {response.status_code}",
            raw.decode("utf-8", errors="replace"),
            response.headers.get("retry-after"),
            transient=response.status_code in RETRY_STATUSES,
        )
    return parse_json_object(raw)


def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body up to ``limit`` bytes (the rest is not read): an error page is cut, a reply refused.

    Raises:
        MalformedReply: a successful reply larger than ``limit``.
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            head = b"".join(chunks)
            if response.status_code >= 400:
                return head[:limit]
            start = head[:QUOTE_CHARS].decode("utf-8", errors="replace")
            raise ReplyTooLarge(
                f"the reply is larger than max_reply_bytes={limit}, starting {quote(start)}"
            )
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in a reply body; MalformedReply quoting the body when it is not one.

    Example:
        >>> parse_json_object(b'{"choices": []}')
        {'choices': []}
        >>> parse_json_object(b'{"choices": [{"mess')
        Traceback (most recent call last):
        ...
        culture_probe.backends._http.MalformedReply: the reply is not JSON (Unterminated string \
starting at: line 1 column 15): '{"choices": [{"mess'
    """
    text = raw.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise MalformedReply(
            f"the reply is not JSON ({error.msg}: {where}): {quote(text)}"
        ) from None
    if not isinstance(payload, dict):
        raise MalformedReply(f"the reply is JSON but not an object: {quote(text)}")
    return payload
