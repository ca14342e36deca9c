"""The ``openai`` backend: any server that speaks the OpenAI chat-completions API.

That is ``vllm serve``, llama.cpp's server, ``llama_cpp.server``, and the hosted APIs. In ``logprobs``
mode each prompt is one request for a single token with its top log-probabilities
(``max_tokens=1, logprobs=true, top_logprobs=20``); the option labels are looked up by token text
("A" and " A", :mod:`culture_probe.backends.labels`). A label outside the returned top 20 counts as 0,
which is the one way this backend can differ from reading the full distribution. Servers that return
no log-probabilities are detected with one probe request when the backend starts; it then samples
answers and parses them (``generate`` mode), says so in a warning, and records it in the backend
information that goes into the run's manifest.

Requests run in a thread pool (``concurrency`` at once) over one HTTP connection pool. A request that
gets 429, a 5xx status, a timeout or a broken connection is retried with exponential backoff and
jitter (honouring ``Retry-After``). When retries run out, or the request budget ``max_requests`` is
spent, the batch stops: the results that did arrive are handed to the runner, which saves them, and
the same command resumes later.

Options (``--option KEY=VALUE``): see :class:`OpenAIOptions`; ``base_url`` and ``api_key`` fall
back on ``CULTURE_PROBE_BASE_URL`` / ``OPENAI_BASE_URL`` and ``CULTURE_PROBE_API_KEY`` /
``OPENAI_API_KEY``.

Identity: the run key holds the model id the server reports (``GET /models``) and, where the
start-up probe's reply carries one, the server's ``system_fingerprint``.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
    ScoringStopped,
)
from culture_probe.backends.generation import (
    GenerationSettings,
    generated_result,
    require_mode,
    short_answer_result,
)
from culture_probe.backends.labels import label_probabilities, label_spellings
from culture_probe.backends.options import parse_options
from culture_probe.errors import CultureProbeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: the most any OpenAI-compatible server returns, and what the hosted API allows
MAX_TOP_LOGPROBS = 20
PROBE_MESSAGES = ({"role": "user", "content": "Answer with one letter: A or B?"},)


class NoLogprobsWarning(UserWarning):
    """The server returns no log-probabilities: answers are sampled and parsed instead."""


class RequestFailed(CultureProbeError):
    """A request that retrying cannot fix: the server is gone, or refused it outright."""


class BudgetSpent(CultureProbeError):
    """The run's request budget (``max_requests``) is used up."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits ``backoff * 2**k`` scaled by [0.5, 1)."""

    max_retries: int = 6
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait_before(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            try:
                return min(self.max_wait, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        ceiling = min(self.max_wait, self.backoff * 2.0**attempt)
        # jitter keeps many clients that failed together from retrying together
        return ceiling * (0.5 + random.random() / 2)


class RequestBudget:
    """A thread-safe count of the requests a run may still send (None: unlimited)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def spend(self) -> None:
        with self._lock:
            if self.limit is not None and self.used >= self.limit:
                raise BudgetSpent(
                    f"the request budget of this run is spent (max_requests={self.limit}); the "
                    "results so far are saved: raise max_requests and run the same command again"
                )
            self.used += 1


def first_setting(*candidates: str | None, default: str | None = None) -> str | None:
    """The first non-empty value: an explicit option, then environment variables, then a default."""
    for candidate in candidates:
        if candidate:
            return candidate
    return default


@dataclass(frozen=True)
class OpenAIOptions:
    """The ``openai`` backend's options (``--option KEY=VALUE``)."""

    model: str = field(
        default="default", metadata={"help": "the model the server serves (--model)"}
    )
    base_url: str | None = field(
        default=None, metadata={"help": "the API's base URL; unset: $OPENAI_BASE_URL or OpenAI's"}
    )
    api_key: str | None = field(
        default=None,
        metadata={"help": "API key; unset: $OPENAI_API_KEY (never recorded)", "secret": True},
    )
    mode: str = field(default="auto", metadata={"help": "auto, logprobs or generate"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    max_retries: int = field(default=6, metadata={"help": "retries of a failed request"})
    backoff: float = field(default=0.5, metadata={"help": "first retry's wait, seconds"})
    timeout: float = field(default=60.0, metadata={"help": "seconds per request"})
    max_requests: int = field(default=0, metadata={"help": "requests this run may send; 0: no cap"})
    top_logprobs: int = field(
        default=MAX_TOP_LOGPROBS, metadata={"help": "log-probabilities read per prompt"}
    )
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (generate)"})
    max_new_tokens: int = field(default=32, metadata={"help": "tokens written at most (generate)"})
    chunk_size: int | None = field(
        default=None, metadata={"help": "prompts handed over at once; unset: 64"}
    )


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible server, many requests at once."""

    options_class: ClassVar[type] = OpenAIOptions
    preferred_chunk_size = 64

    def __init__(self, **raw: Any) -> None:
        declared = parse_options(OpenAIOptions, raw)
        model, base_url, api_key = declared.model, declared.base_url, declared.api_key
        mode, concurrency, timeout = declared.mode, declared.concurrency, declared.timeout
        max_retries, backoff = declared.max_retries, declared.backoff
        max_requests, top_logprobs = declared.max_requests, declared.top_logprobs
        temperature, max_new_tokens = declared.temperature, declared.max_new_tokens
        chunk_size = declared.chunk_size
        self.model = model
        self.base_url = str(
            first_setting(
                base_url,
                os.environ.get("CULTURE_PROBE_BASE_URL"),
                os.environ.get("OPENAI_BASE_URL"),
                default=DEFAULT_BASE_URL,
            )
        ).rstrip("/")
        key = first_setting(
            api_key, os.environ.get("CULTURE_PROBE_API_KEY"), os.environ.get("OPENAI_API_KEY")
        )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.concurrency = max(1, int(concurrency))
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff)
        self.budget = RequestBudget(max_requests if max_requests > 0 else None)
        self.top_logprobs = max(1, min(MAX_TOP_LOGPROBS, int(top_logprobs)))
        self.generation = GenerationSettings(temperature, max_new_tokens)
        if chunk_size:
            self.preferred_chunk_size = int(chunk_size)
        self.retries = 0
        self._retries_lock = threading.Lock()
        self.mode_note = ""
        #: the server's ``system_fingerprint`` in its reply to the start-up probe, if any
        self.system_fingerprint: str | None = None
        self.server_model = self._server_model()
        self.mode = self._choose_mode(require_mode(mode, ("auto", "logprobs", "generate")))

    # --- identity -------------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "concurrency": self.concurrency,
            "requests": self.budget.used,
            "retries": self.retries,
        }
        if self.mode == "logprobs":
            options["top_logprobs"] = self.top_logprobs
        else:
            options["temperature"] = self.generation.temperature
            options["max_tokens"] = self.generation.max_new_tokens
        if self.mode_note:
            options["mode_note"] = self.mode_note
        if self.budget.limit is not None:
            options["max_requests"] = self.budget.limit
        options["server_model"] = self.server_model
        if self.system_fingerprint:
            options["system_fingerprint"] = self.system_fingerprint
        return BackendInfo(
            backend="openai",
            model=self.model,
            # a server does not tell us its weights; the model it reports is the closest identity
            model_hash=f"openai:{self.server_model}",
            dtype="server",
            mode=self.mode,
            options=options,
        )

    def _server_model(self) -> str:
        """The model id the server reports for ``model`` (GET /models), or ``model`` itself."""
        try:
            listing = self._send("GET", "/models")
        except RequestFailed as error:
            raise CultureProbeError(
                f"cannot reach an OpenAI-compatible server at {self.base_url}: {error}"
            ) from error
        ids = [str(entry.get("id")) for entry in listing.get("data", []) if entry.get("id")]
        if self.model in ids or not ids:
            return self.model
        return ids[0] if len(ids) == 1 else self.model

    def _choose_mode(self, requested: str) -> str:
        if requested != "auto":
            return requested
        reply = self._post_chat(self._logprobs_body(list(PROBE_MESSAGES), seed=0))
        fingerprint = reply.get("system_fingerprint")
        self.system_fingerprint = str(fingerprint) if fingerprint else None
        if top_logprobs_of(reply) is not None:
            return "logprobs"
        self.mode_note = (
            "the server returned no log-probabilities, so answers are sampled and parsed "
            "(generate mode)"
        )
        warnings.warn(f"{self.base_url}: {self.mode_note}", NoLogprobsWarning, stacklevel=3)
        return "generate"

    # --- scoring --------------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        one = self._score_logprobs if self.mode == "logprobs" else self._score_generate
        return self._run_all(requests, one)

    def _run_all(
        self,
        requests: Sequence[ScoringRequest],
        one: Callable[[ScoringRequest], ScoredPrompt],
    ) -> list[ScoredPrompt]:
        """Run ``one`` over the requests, ``concurrency`` at a time; stop all on the first failure."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(one, request) for request in requests]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is None:
                return [future.result() for future in futures]
            for future in futures:
                future.cancel()
        # the pool has drained: requests that were already in flight have finished
        completed = _finished_results(futures)
        error = failed.exception()
        raise ScoringStopped(self._stop_message(error, len(completed)), completed) from error

    def _stop_message(self, error: BaseException | None, n_completed: int) -> str:
        saved = f"{n_completed} result(s) of this batch arrived and are saved"
        if isinstance(error, BudgetSpent):
            return f"{error}; {saved}"
        return (
            f"stopped: {error}. {saved}, as are the batches before it; run the same command "
            "again to resume"
        )

    def _score_logprobs(self, request: ScoringRequest) -> ScoredPrompt:
        reply = self._post_chat(self._logprobs_body(request.messages(), request.seed))
        top = top_logprobs_of(reply)
        if top is None:
            raise RequestFailed(
                f"the server stopped returning log-probabilities (prompt {request.prompt_id}); "
                "use --option mode=generate"
            )
        probs, mass = label_probabilities(
            top.get, [label_spellings(label) for label in request.option_labels]
        )
        return ScoredPrompt(request.prompt_id, probs, mass)

    def _score_generate(self, request: ScoringRequest) -> ScoredPrompt:
        return generated_result(request, self._sampled_text(request))

    def write_short_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Free-text answers under each prompt's seed, with the generate mode's decoding."""
        return self._run_all(
            requests, lambda request: short_answer_result(request, self._sampled_text(request))
        )

    def short_answer_decoding(self) -> dict[str, Any]:
        return {
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_new_tokens,
        }

    def _sampled_text(self, request: ScoringRequest) -> str:
        body = {
            "model": self.server_model,
            "messages": request.messages(),
            "max_tokens": self.generation.max_new_tokens,
            "temperature": self.generation.temperature,
            "top_p": self.generation.top_p,
            "seed": request.seed,
        }
        return message_text(self._post_chat(body))

    def _logprobs_body(self, messages: list[dict[str, str]], seed: int) -> dict[str, Any]:
        return {
            "model": self.server_model,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "seed": seed,
        }

    # --- HTTP -----------------------------------------------------------------------------------

    def _post_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", "/chat/completions", body)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call with retries; raises RequestFailed when retrying cannot help."""
        attempt = 0
        while True:
            self.budget.spend()
            try:
                response = self.client.request(method, path, json=body)
            except httpx.TransportError as error:
                problem, retry_after = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code < 400:
                    payload: dict[str, Any] = response.json()
                    return payload
                if response.status_code not in RETRY_STATUSES:
                    raise RequestFailed(
                        f"{method} {self.base_url}{path} answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
            if attempt >= self.retry.max_retries:
                raise RequestFailed(
                    f"the server at {self.base_url} failed {attempt + 1} time(s) in a row "
                    f"(last: {problem})"
                )
            with self._retries_lock:
                self.retries += 1
            time.sleep(self.retry.wait_before(attempt, retry_after))
            attempt += 1

    def close(self) -> None:
        self.client.close()


def top_logprobs_of(reply: dict[str, Any]) -> dict[str, float] | None:
    """Token text -> log-probability for the first generated token, or None if absent.

    Where two tokens decode to the same text, the more probable one is kept.
    """
    choices = reply.get("choices") or []
    logprobs = (choices[0].get("logprobs") if choices else None) or {}
    content = logprobs.get("content") or []
    if not content or not content[0].get("top_logprobs"):
        return None
    table: dict[str, float] = {}
    for entry in content[0]["top_logprobs"]:
        token, logprob = str(entry.get("token", "")), entry.get("logprob")
        if logprob is None or not math.isfinite(float(logprob)):
            continue
        table[token] = max(float(logprob), table.get(token, -math.inf))
    return table


def message_text(reply: dict[str, Any]) -> str:
    """The assistant's text in a chat-completions reply ("" when there is none)."""
    choices = reply.get("choices") or []
    message = (choices[0].get("message") if choices else None) or {}
    return str(message.get("content") or "")


def _finished_results(futures: Sequence[Future[ScoredPrompt]]) -> dict[int, ScoredPrompt]:
    return {
        index: future.result()
        for index, future in enumerate(futures)
        if future.done() and not future.cancelled() and future.exception() is None
    }
