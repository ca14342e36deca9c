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
gets 429, a 5xx status, a timeout or a broken connection is retried for up to ``retry_budget_s``
seconds from its first failure, waiting as ``Retry-After`` asks (seconds or an HTTP date) or with
exponential backoff and jitter (:mod:`culture_probe.backends._http`). At start-up a refused
connection is not retried: nothing listening at ``base_url`` is almost always a typing error. When
the budget is spent, or the request budget ``max_requests`` is, the batch stops: the results that
did arrive are handed to the runner, which saves them, and the same command resumes later. A reply
that is not a chat completion (truncated JSON, an HTML page, no ``choices``, no log-probabilities in
``logprobs`` mode, more than ``max_reply_bytes``) makes that prompt ``invalid``, with the server's
text quoted in its ``generated`` column; the rest of the run goes on. A batch of at least
``MALFORMED_BATCH`` prompts whose replies are all malformed is the server's trouble, not the
prompts': it stops the run unsaved, so that a rerun scores it again. The retries, the time spent
waiting and the malformed replies are counted in :meth:`OpenAIBackend.info`.

Options (``--option KEY=VALUE``): see :class:`OpenAIOptions`; ``base_url`` and ``api_key`` fall
back on ``CULTURE_PROBE_BASE_URL`` / ``OPENAI_BASE_URL`` and ``CULTURE_PROBE_API_KEY`` /
``OPENAI_API_KEY``.

Identity: the run key holds the model id the server reports (``GET /models``) and, where the
start-up probe's reply carries one, the server's ``system_fingerprint``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from culture_probe.backends._http import (
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_RETRY_BUDGET_S,
    Exchange,
    MalformedReply,
    ReplyTooLarge,
    RequestFailed,
    RetryPolicy,
    RetryStats,
    checked_base_url,
    quote,
    send_json,
)
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
from culture_probe.bounds import NON_NEGATIVE, POSITIVE, Range
from culture_probe.errors import CultureProbeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: the most any OpenAI-compatible server returns, and what the hosted API allows
MAX_TOP_LOGPROBS = 20
#: a batch at least this large whose replies are all malformed stops the run instead (see
#: :meth:`OpenAIBackend._check_not_all_malformed`)
MALFORMED_BATCH = 4
PROBE_MESSAGES = ({"role": "user", "content": "Answer with one letter: A or B?"},)


class NoLogprobsWarning(UserWarning):
    """The server returns no log-probabilities: answers are sampled and parsed instead."""


class MalformedReplyWarning(UserWarning):
    """Some replies were not chat completions: those prompts are recorded as ``invalid``."""


class BudgetSpent(CultureProbeError):
    """The run's request budget (``max_requests``) is used up."""


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
    concurrency: int = field(
        default=8, metadata={"help": "requests in flight at once", "range": POSITIVE}
    )
    retry_budget_s: float = field(
        default=DEFAULT_RETRY_BUDGET_S,
        metadata={
            "help": "seconds to keep retrying a failed request (429, 5xx, broken connection)",
            "range": NON_NEGATIVE,
        },
    )
    max_retries: int = field(
        default=0,
        metadata={
            "help": "a cap on retries per request besides the budget; 0: none",
            "range": NON_NEGATIVE,
        },
    )
    backoff: float = field(
        default=0.5, metadata={"help": "first retry's wait, seconds", "range": NON_NEGATIVE}
    )
    timeout: float = field(
        default=60.0, metadata={"help": "seconds per request", "range": Range(low=0, open_low=True)}
    )
    max_requests: int = field(
        default=0, metadata={"help": "requests this run may send; 0: no cap", "range": NON_NEGATIVE}
    )
    top_logprobs: int = field(
        default=MAX_TOP_LOGPROBS,
        metadata={
            "help": "log-probabilities read per prompt",
            "range": Range(low=1, high=MAX_TOP_LOGPROBS),
        },
    )
    temperature: float = field(
        default=0.7, metadata={"help": "sampling temperature (generate)", "range": NON_NEGATIVE}
    )
    max_new_tokens: int = field(
        default=32, metadata={"help": "tokens written at most (generate)", "range": POSITIVE}
    )
    chunk_size: int | None = field(
        default=None, metadata={"help": "prompts handed over at once; unset: 64", "range": POSITIVE}
    )
    max_reply_bytes: int = field(
        default=DEFAULT_MAX_REPLY_BYTES,
        metadata={
            "help": "a longer reply makes its prompt invalid instead of filling memory",
            "range": POSITIVE,
        },
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
        retry_budget_s, max_reply_bytes = declared.retry_budget_s, declared.max_reply_bytes
        self.model = model
        self.base_url = checked_base_url(
            str(
                first_setting(
                    base_url,
                    os.environ.get("CULTURE_PROBE_BASE_URL"),
                    os.environ.get("OPENAI_BASE_URL"),
                    default=DEFAULT_BASE_URL,
                )
            )
        )
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
        self.retry = RetryPolicy(
            budget_s=float(retry_budget_s), backoff=float(backoff), max_retries=int(max_retries)
        )
        self.max_reply_bytes = int(max_reply_bytes)
        self.budget = RequestBudget(max_requests if max_requests > 0 else None)
        self.top_logprobs = max(1, min(MAX_TOP_LOGPROBS, int(top_logprobs)))
        self.generation = GenerationSettings(temperature, max_new_tokens)
        if chunk_size:
            self.preferred_chunk_size = int(chunk_size)
        self.stats = RetryStats()
        self._stop = threading.Event()
        self.mode_note = ""
        #: the server's ``system_fingerprint`` in its reply to the start-up probe, if any
        self.system_fingerprint: str | None = None
        self.server_model = self._server_model()
        self.mode = self._choose_mode(require_mode(mode, ("auto", "logprobs", "generate")))

    # --- identity -------------------------------------------------------------------------------

    def max_options(self) -> int | None:
        return self.top_logprobs if self.mode == "logprobs" else None

    def info(self) -> BackendInfo:
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "concurrency": self.concurrency,
            "requests": self.budget.used,
            **self.stats.as_options(),
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

    @property
    def retries(self) -> int:
        """How many requests were sent again so far (start-up included)."""
        return self.stats.retries

    def _server_model(self) -> str:
        """The model id the server reports for ``model`` (GET /models), or ``model`` itself."""
        try:
            listing = self._send("GET", "/models", starting=True)
        except RequestFailed as error:
            raise CultureProbeError(
                f"cannot reach an OpenAI-compatible server at {self.base_url}: {error}; check "
                "base_url and that the server is running"
            ) from error
        except MalformedReply as error:
            raise self._not_an_api(error) from error
        entries = listing.get("data")
        entries = entries if isinstance(entries, list) else []
        ids = [str(entry["id"]) for entry in entries if isinstance(entry, dict) and entry.get("id")]
        if self.model in ids or not ids:
            return self.model
        return ids[0] if len(ids) == 1 else self.model

    def _choose_mode(self, requested: str) -> str:
        if requested != "auto":
            return requested
        try:
            reply = self._send(
                "POST",
                "/chat/completions",
                self._logprobs_body(list(PROBE_MESSAGES), seed=0),
                starting=True,
            )
            top = top_logprobs_of(reply)
        except MalformedReply as error:
            raise self._not_an_api(error) from error
        fingerprint = reply.get("system_fingerprint")
        self.system_fingerprint = str(fingerprint) if fingerprint else None
        if top is not None:
            return "logprobs"
        self.mode_note = (
            "the server returned no log-probabilities, so answers are sampled and parsed "
            "(generate mode)"
        )
        warnings.warn(f"{self.base_url}: {self.mode_note}", NoLogprobsWarning, stacklevel=3)
        return "generate"

    def _not_an_api(self, error: MalformedReply) -> CultureProbeError:
        if isinstance(error, ReplyTooLarge):
            return CultureProbeError(
                f"the server at {self.base_url} answered: {error}; if its replies are meant to "
                "be this large, raise --option max_reply_bytes"
            )
        return CultureProbeError(
            f"the server at {self.base_url} does not answer like an OpenAI-compatible API: {error}; "
            "base_url should be the API's address (often ending in /v1)"
        )

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
        self._stop.clear()
        malformed_before = self.stats.malformed
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(one, request) for request in requests]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            # the first failures, before the others are told to stop (and fail for that reason)
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is None:
                results = [future.result() for future in futures]
                self._check_not_all_malformed(results, self.stats.malformed - malformed_before)
                return results
            self._stop.set()
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

    def _check_not_all_malformed(self, results: list[ScoredPrompt], malformed: int) -> None:
        """Warn about malformed replies; stop when a whole batch is malformed.

        A few malformed replies are the prompts' own trouble, and those prompts are ``invalid``.
        A whole batch of them (a proxy's error page, a server that broke) says nothing about the
        prompts: saving them as ``invalid`` would lose them, since a rerun skips scored prompts.
        So the batch is not saved, and the same command scores it again later.
        """
        if malformed >= MALFORMED_BATCH and malformed == len(results):
            raise ScoringStopped(
                f"stopped: every one of the {len(results)} replies in this batch was not a chat "
                f"completion, so the server at {self.base_url} is not answering as it should; the "
                f"first: {results[0].generated}. Nothing of this batch is saved (the batches "
                "before it are); run the same command again once the server answers"
            )
        self._warn_malformed(malformed, len(results))

    def _warn_malformed(self, count: int, total: int) -> None:
        if count:
            warnings.warn(
                f"{self.base_url}: {count} of {total} replies in this batch were not chat "
                "completions; those prompts are recorded as invalid for now, with the server's "
                "text in their 'generated' column, and asked again when the same command runs "
                "again",
                MalformedReplyWarning,
                stacklevel=5,
            )

    def _malformed(self, request: ScoringRequest, error: MalformedReply) -> ScoredPrompt:
        """An ``invalid`` result that keeps what the server said, for the user to read."""
        self.stats.record_malformed()
        return ScoredPrompt(
            request.prompt_id, (), 0.0, "invalid", f"malformed reply: {error}", failure="server"
        )

    def _score_logprobs(self, request: ScoringRequest) -> ScoredPrompt:
        try:
            reply = self._post_chat(self._logprobs_body(request.messages(), request.seed))
            top = top_logprobs_of(reply)
            if top is None:
                raise MalformedReply(
                    "the reply has no log-probabilities (--option mode=generate reads a server "
                    f"without them): {quote(json.dumps(reply))}"
                )
        except MalformedReply as error:
            return self._malformed(request, error)
        probs, mass = label_probabilities(
            top.get, [label_spellings(label) for label in request.option_labels]
        )
        return ScoredPrompt(request.prompt_id, probs, mass)

    def _score_generate(self, request: ScoringRequest) -> ScoredPrompt:
        try:
            text = self._sampled_text(request)
        except MalformedReply as error:
            return self._malformed(request, error)
        return generated_result(request, text)

    def _write_short_answer(self, request: ScoringRequest) -> ScoredPrompt:
        try:
            text = self._sampled_text(request)
        except MalformedReply as error:
            return self._malformed(request, error)
        return short_answer_result(request, text)

    def write_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Free-text answers under each prompt's seed, with the generate mode's decoding."""
        return self._run_all(requests, self._write_short_answer)

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

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, starting: bool = False
    ) -> dict[str, Any]:
        """One API call, retried within ``retry_budget_s``; see :func:`send_json`.

        ``starting``: the calls that start the backend, where a refused connection means a wrong
        ``base_url`` rather than a server restarting, so it is not retried.
        """
        policy = dataclasses.replace(self.retry, retry_refused=False) if starting else self.retry
        exchange = Exchange(
            self.client, policy, self.stats, self._stop, self.budget.spend, self.max_reply_bytes
        )
        return send_json(exchange, method, path, body)

    def close(self) -> None:
        self.client.close()


def first_choice(reply: dict[str, Any]) -> dict[str, Any]:
    """The first of a reply's ``choices``; MalformedReply (quoting the reply) when there is none."""
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedReply(f"the reply has no choices: {quote(json.dumps(reply))}")
    choice: dict[str, Any] = choices[0]
    return choice


def top_logprobs_of(reply: dict[str, Any]) -> dict[str, float] | None:
    """Token text -> log-probability for the first generated token, or None if absent.

    Where two tokens decode to the same text, the more probable one is kept.

    Raises:
        MalformedReply: the reply has no ``choices``, or log-probabilities that are not numbers.
    """
    logprobs = first_choice(reply).get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    entries = content[0].get("top_logprobs")
    if not isinstance(entries, list) or not entries:
        return None
    try:
        return _best_per_token(entries)
    except (TypeError, ValueError, AttributeError) as error:
        raise MalformedReply(
            f"the reply's log-probabilities do not read ({error}): {quote(json.dumps(reply))}"
        ) from None


def _best_per_token(entries: list[Any]) -> dict[str, float]:
    table: dict[str, float] = {}
    for entry in entries:
        token, logprob = str(entry.get("token", "")), entry.get("logprob")
        if logprob is None or float(logprob) == -math.inf:
            continue  # a token the server gives no chance at all
        if not math.isfinite(float(logprob)):
            # NaN is no probability, and read as 0 it would move every option's share
            raise ValueError(f"token {token!r} has log-probability {logprob}")
        table[token] = max(float(logprob), table.get(token, -math.inf))
    return table


def message_text(reply: dict[str, Any]) -> str:
    """The assistant's text in a chat-completions reply ("" when there is none).

    Raises:
        MalformedReply: the reply has no ``choices``.
    """
    message = first_choice(reply).get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return str(content or "")


def _finished_results(futures: Sequence[Future[ScoredPrompt]]) -> dict[int, ScoredPrompt]:
    return {
        index: future.result()
        for index, future in enumerate(futures)
        if future.done() and not future.cancelled() and future.exception() is None
    }
