"""The ``openai`` backend: any server that speaks the OpenAI chat-completions API.

That is ``vllm serve``, llama.cpp's server, ``llama_cpp.server``, and the hosted APIs. In ``logprobs``
mode each prompt is one request for a single token with its top log-probabilities
(``max_tokens=1, logprobs=true, top_logprobs=20``); the option labels are looked up by token text
("A" and " A", :mod:`culture_probe.backends.labels`). A prompt with a label outside the returned top
20 is then scored exactly (``exact_rescore``, on by default): each spelling of each of its labels is
read as the log-probability of prompt + label, from a chat completion constrained to write that
label or from the server's prompt log-probabilities (``/completions`` with ``echo``)
(:mod:`culture_probe.backends._server_exact`). Where neither works the prompt is ``invalid``, with
the reason in its ``generated`` column: a label is never silently 0. The manifest counts the
prompts rescored and the seconds it took. Servers that return
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

With ``prompt_tokens=local`` the chats are rendered and tokenized by the model's own tokenizer,
as on ``hf``, and every request goes to ``/completions`` with those token ids as its ``prompt``
(:mod:`culture_probe.backends._local_tokens`): a server's tokenizer may split the same text into
other tokens than the model was trained with.

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
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
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
from culture_probe.backends._local_tokens import (
    PROMPT_TOKENS,
    LocalTokenizer,
    default_tokenizer_source,
)
from culture_probe.backends._server_exact import (
    AGREEMENT_TOLERANCE,
    METHODS,
    ChatTemplate,
    NotALabelToken,
    RescoreStats,
    Unavailable,
    all_spellings,
    chat_template_from,
    choice_text,
    chosen_label,
    constraint_fields,
    echo_continuation_logprob,
    echo_tail_logprob,
    first_token_probabilities,
    forced_continuation_logprob,
    labels_outside,
    prompt_tokens_read,
    reference_token,
    server_draw_seed,
    token_entries,
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
from culture_probe.errors import CultureProbeError, InputError, expected_one_of

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: the most any OpenAI-compatible server returns, and what the hosted API allows
MAX_TOP_LOGPROBS = 20
#: a batch at least this large whose replies are all malformed stops the run instead (see
#: :meth:`OpenAIBackend._check_not_all_malformed`)
MALFORMED_BATCH = 4
PROBE_MESSAGES = ({"role": "user", "content": "Answer with one letter: A or B?"},)
#: retries of the start-up request with token ids (``prompt_tokens=local``): llama-cpp-python's
#: server answers a prompt of token ids with HTTP 500, which would otherwise be retried for the
#: whole ``retry_budget_s``
TOKEN_PROBE_RETRIES = 2
#: a constrained answer is sampled at temperature 1, so that it is a draw from the exact
#: constrained distribution its ``probs`` hold
CONSTRAINED_TEMPERATURE = 1.0


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


def rescore_methods(choice: str) -> tuple[str, ...]:
    """The exact methods ``rescore_with`` names, in the order they are tried.

    Example:
        >>> rescore_methods("auto")
        ('grammar', 'prompt_logprobs')
    """
    if choice == "auto":
        return METHODS
    if choice not in METHODS:
        raise InputError(
            f"--option rescore_with got {choice!r}; {expected_one_of(choice, ('auto', *METHODS))}"
        )
    return (choice,)


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
    exact_rescore: bool = field(
        default=True,
        metadata={
            "help": "score exactly the prompts with a label outside the top log-probabilities; "
            "false: such a label counts as 0"
        },
    )
    rescore_with: str = field(
        default="auto",
        metadata={
            "help": "how labels are scored exactly: grammar (a constrained chat completion), "
            "prompt_logprobs (/completions with echo), or auto (the first of these that works)"
        },
    )
    chat_template: str | None = field(
        default=None,
        metadata={
            "help": "a .gguf file, model folder or Jinja file whose chat template renders prompts "
            "for prompt_logprobs as the server does; unset: the .gguf file the server names"
        },
    )
    prompt_tokens: str = field(
        default="server",
        metadata={
            "help": "server: chat messages, which the server renders and tokenizes; local: the "
            "model's own chat template and tokenizer (as on hf), sent as token ids to "
            "/completions (vLLM, llama.cpp's llama-server)",
            "choices": PROMPT_TOKENS,
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "the model's tokenizer for prompt_tokens=local: a .gguf file, model folder, "
            "'embedded' or hub id; unset: the .gguf file the server names"
        },
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
        self.exact_rescore = declared.exact_rescore
        self.rescore_methods = rescore_methods(declared.rescore_with)
        self.chat_template_source = declared.chat_template
        self.prompt_tokens = declared.prompt_tokens
        if declared.tokenizer is not None and self.prompt_tokens != "local":
            raise InputError(
                "--option tokenizer is read only with --option prompt_tokens=local (the server "
                "tokenizes chat messages itself)"
            )
        #: the model's own tokenizer, with ``prompt_tokens=local``
        self.local: LocalTokenizer | None = None
        self.rescore_stats = RescoreStats()
        self._exact_lock = threading.Lock()
        #: the way labels are scored exactly, once one passed its check; the reasons all failed
        self.exact_method: str | None = None
        self.exact_failure = ""
        self._template: ChatTemplate | None = None
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
        if self.prompt_tokens == "local":
            self.local = LocalTokenizer(
                declared.tokenizer or default_tokenizer_source(self.server_model)
            )
        self.mode = self._choose_mode(require_mode(mode, ("auto", "logprobs", "generate")))

    # --- identity -------------------------------------------------------------------------------

    def max_options(self) -> int | None:
        # with exact rescoring a label outside the top k is scored, or its prompt is invalid
        return self.top_logprobs if self.mode == "logprobs" and not self.exact_rescore else None

    def info(self) -> BackendInfo:
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "concurrency": self.concurrency,
            "requests": self.budget.used,
            **self.stats.as_options(),
        }
        if self.mode == "logprobs":
            options["top_logprobs"] = self.top_logprobs
            options["exact_rescore"] = self.exact_rescore
            if self.exact_rescore:
                options.update(self._rescore_record())
        else:
            options["temperature"] = self.generation.temperature
            options["max_tokens"] = self.generation.max_new_tokens
        if self.local is not None:
            # recorded only when local, so that runs with the server's tokens keep their key
            options["prompt_tokens"] = "local"
            options["tokenizer"] = self.local.source
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

    def _rescore_record(self) -> dict[str, Any]:
        """What the manifest records of the exact rescoring: counts, time, method or why none."""
        record: dict[str, Any] = {
            "rescore_with": "auto" if self.rescore_methods == METHODS else self.rescore_methods[0],
            **self.rescore_stats.as_options(),
        }
        if self.exact_method:
            record["rescore_method"] = self.exact_method
        if self.exact_failure:
            record["rescore_unavailable"] = self.exact_failure
        return record

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
        if requested != "auto" and self.local is None:
            return requested
        try:
            reply = self._ask(list(PROBE_MESSAGES), self._logprobs_fields(seed=0), starting=True)
            top = top_logprobs_of(reply)
        except MalformedReply as error:
            raise self._not_an_api(error) from error
        except RequestFailed as error:
            if self.local is None:
                raise
            raise CultureProbeError(
                f"the server at {self.base_url} refuses token ids as the prompt of /completions "
                f"({error}); prompt_tokens=local needs a server that takes them (vLLM, llama.cpp's "
                "llama-server, or `culture-probe serve MODEL.gguf`; llama-cpp-python's own "
                "`python -m llama_cpp.server` takes text only), or --option prompt_tokens=server"
            ) from error
        if requested != "auto":
            return requested
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
            reply = self._ask(request.messages(), self._logprobs_fields(request.seed))
            top = top_logprobs_of(reply)
            if top is None:
                raise MalformedReply(
                    "the reply has no log-probabilities (--option mode=generate reads a server "
                    f"without them): {quote(json.dumps(reply))}"
                )
        except MalformedReply as error:
            return self._malformed(request, error)
        if self.exact_rescore and labels_outside(top, request.option_labels):
            return self._rescored(request, top)
        probs, mass = label_probabilities(
            top.get, [label_spellings(label) for label in request.option_labels]
        )
        return ScoredPrompt(request.prompt_id, probs, mass)

    def _top_logprobs(self, request: ScoringRequest) -> dict[str, float]:
        """The server's top-k next tokens for a prompt (MalformedReply when it gives none)."""
        reply = self._ask(request.messages(), self._logprobs_fields(request.seed))
        top = top_logprobs_of(reply)
        if top is None:
            raise MalformedReply(f"the reply has no log-probabilities: {quote(json.dumps(reply))}")
        return top

    # --- exact scores (labels outside the top k, constrained answers) -------------------------

    def _rescored(self, request: ScoringRequest, top: dict[str, float]) -> ScoredPrompt:
        """A prompt scored from the exact log-probability of each spelling of each label."""
        started = time.monotonic()
        try:
            logprobs = self._spelling_logprobs(request, top)
        except Unavailable as error:
            self.rescore_stats.record(0, time.monotonic() - started, failed=True)
            return ScoredPrompt(
                request.prompt_id,
                (),
                0.0,
                "invalid",
                f"a label is outside the server's top {self.top_logprobs} log-probabilities and "
                f"cannot be scored exactly: {error}",
            )
        except MalformedReply as error:
            return self._malformed(request, error)
        probs, mass = first_token_probabilities(logprobs, request.option_labels)
        self.rescore_stats.record(len(logprobs), time.monotonic() - started)
        return ScoredPrompt(request.prompt_id, probs, mass)

    def _spelling_logprobs(
        self, request: ScoringRequest, top: dict[str, float]
    ) -> dict[str, float]:
        """The exact log-probability of each spelling of each label after the prompt.

        The bare label must be scored; the spaced one counts where it is a token of its own, as
        on ``hf`` (:class:`NotALabelToken`).
        """
        logprobs = self._exact_logprobs(request, request.option_labels, top)
        spaced = [" " + label for label in request.option_labels]
        return logprobs | self._exact_logprobs(request, spaced, top, optional=True)

    def _exact_logprobs(
        self,
        request: ScoringRequest,
        continuations: Sequence[str],
        top: dict[str, float],
        optional: bool = False,
    ) -> dict[str, float]:
        """The exact log-probability of each continuation after the prompt.

        ``optional``: a continuation that is no token of its own after the prompt
        (:class:`NotALabelToken`) is left out instead of failing the prompt.

        Raises:
            Unavailable: no way of scoring exactly works on this server (the reasons joined),
                or a continuation is not its own token after the prompt.
        """
        method = self._exact_method(request, top)
        found = {}
        for continuation in dict.fromkeys(continuations):
            if self.local is not None and not self.local.spells_label(continuation):
                if not optional:
                    raise Unavailable(
                        f"the model's tokenizer reads {continuation!r} as "
                        f"{self.local.text_ids(continuation)}, whose first token is not the label"
                    )
                continue  # no token of its own: 0, as hf counts it (NotALabelToken)
            try:
                found[continuation] = self._continuation_logprob(method, request, continuation)
            except NotALabelToken:
                if not optional:
                    raise
        return found

    def _exact_method(self, request: ScoringRequest, top: dict[str, float]) -> str:
        """The exact method, chosen once (the first prompt that needs one checks them)."""
        with self._exact_lock:
            if self.exact_method is None and not self.exact_failure:
                self._choose_exact_method(request, top)
        if self.exact_method is None:
            raise Unavailable(self.exact_failure)
        return self.exact_method

    def _choose_exact_method(self, request: ScoringRequest, top: dict[str, float]) -> None:
        """Try each method on a token the top-k list holds; keep the first that agrees with it."""
        token = reference_token(top)
        if token is None:
            raise Unavailable("the top-k list holds no printable token to check a method against")
        reasons = []
        for method in self.rescore_methods:
            try:
                value = self._continuation_logprob(method, request, token)
            except (Unavailable, RequestFailed, MalformedReply) as error:
                reasons.append(f"{method}: {error}")
                continue
            if abs(value - top[token]) <= AGREEMENT_TOLERANCE:
                self.exact_method = method
                return
            reasons.append(
                f"{method}: it gives the token {token!r} the log-probability {value:.4f} where "
                f"the top-{self.top_logprobs} list says {top[token]:.4f}"
            )
        self.exact_failure = "; ".join(reasons)

    def _continuation_logprob(self, method: str, request: ScoringRequest, text: str) -> float:
        if method == "prompt_logprobs":
            return self._echoed_logprob(request, text)
        fields = {
            # a token holds at least one byte: this many tokens always write the text
            "max_tokens": len(text.encode("utf-8")) + 1,
            "temperature": 0.0,
            **self._logprob_count(1),
            "seed": request.seed,
            **constraint_fields([text]),
        }
        expected = self.local.tokens(text) if self.local is not None else None
        return forced_continuation_logprob(self._ask(request.messages(), fields), text, expected)

    def _echoed_logprob(self, request: ScoringRequest, text: str) -> float:
        """A continuation's log-probability from the server's log-probabilities of the prompt."""
        fields = {"echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        fields["seed"] = request.seed
        if self.local is not None:
            continuation = self.local.text_ids(text)
            body = {"model": self.server_model, "prompt": self._prompt_ids(request) + continuation}
            reply = self._send("POST", "/completions", body | fields)
            return echo_tail_logprob(reply, len(continuation))
        body = {
            "model": self.server_model,
            "prompt": self._chat_template().render(request.messages()) + text,
        }
        return echo_continuation_logprob(self._send("POST", "/completions", body | fields), text)

    def _chat_template(self) -> ChatTemplate:
        """The template ``chat_template`` names, else the one in the .gguf file the server serves."""
        if self._template is None:
            source = self.chat_template_source
            if source is None:
                if not (self.server_model.endswith(".gguf") and Path(self.server_model).is_file()):
                    raise Unavailable(
                        "no chat template to render prompts for /completions as the server "
                        "renders chats: name one with --option chat_template=FILE"
                    )
                source = self.server_model
            self._template = chat_template_from(source)
        return self._template

    def score_constrained(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """One label per prompt, sampled under a constraint that admits only the labels.

        The sample is drawn at temperature 1 under :func:`server_draw_seed` (llama.cpp's ``grammar``,
        vLLM's ``guided_choice``); ``label_probs`` is the exact constrained distribution, the
        labels' continuation probabilities renormalised, where an exact method works on the
        server, else one-hot on the label drawn.
        """
        return self._run_all(requests, self._constrained_one)

    def _constrained_one(self, request: ScoringRequest) -> ScoredPrompt:
        labels = request.option_labels
        fields = {
            "max_tokens": max(len(label.encode("utf-8")) for label in labels) + 2,
            "temperature": CONSTRAINED_TEMPERATURE,
            "seed": server_draw_seed(request),
            **constraint_fields(all_spellings(labels)),
        }
        try:
            text = message_text(self._ask(request.messages(), fields))
            choice = chosen_label(text, labels)
            if choice < 0:
                return ScoredPrompt(
                    request.prompt_id,
                    (),
                    0.0,
                    "invalid",
                    f"the server ignored the constraint to write one label: {text[:200]!r}",
                )
            exact = self._constrained_distribution(request)
        except MalformedReply as error:
            return self._malformed(request, error)
        if exact is None:
            one_hot = tuple(1.0 if i == choice else 0.0 for i in range(len(labels)))
            return ScoredPrompt(request.prompt_id, one_hot, 1.0, generated=text, choice=choice)
        probs, mass = exact
        return ScoredPrompt(request.prompt_id, probs, mass, generated=text, choice=choice)

    def _constrained_distribution(
        self, request: ScoringRequest
    ) -> tuple[tuple[float, ...], float] | None:
        """The labels' continuation probabilities renormalised, and their sum; None if unknown."""
        if self.mode != "logprobs" or self.exact_failure:
            return None  # a server without log-probabilities, or none of the methods passed
        try:
            top = self._top_logprobs(request) if self.exact_method is None else {}
            logprobs = self._spelling_logprobs(request, top)
        except Unavailable:
            return None
        return first_token_probabilities(logprobs, request.option_labels)

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
        fields = {
            "max_tokens": self.generation.max_new_tokens,
            "temperature": self.generation.temperature,
            "top_p": self.generation.top_p,
            "seed": request.seed,
        }
        return message_text(self._ask(request.messages(), fields))

    def _logprobs_fields(self, seed: int) -> dict[str, Any]:
        """One next token, greedy, with the top ``top_logprobs`` log-probabilities."""
        return {
            "max_tokens": 1,
            "temperature": 0.0,
            **self._logprob_count(self.top_logprobs),
            "seed": seed,
        }

    def _logprob_count(self, count: int) -> dict[str, Any]:
        """Ask for ``count`` log-probabilities per written token, as each endpoint spells it."""
        if self.local is not None:
            return {"logprobs": count}  # the legacy completions field (llama-server: n_probs)
        return {"logprobs": True, "top_logprobs": count}

    # --- HTTP -----------------------------------------------------------------------------------

    def _ask(
        self, messages: list[dict[str, str]], fields: dict[str, Any], starting: bool = False
    ) -> dict[str, Any]:
        """One request about a chat: its messages to ``/chat/completions``, or its token ids.

        With ``prompt_tokens=local`` the chat is rendered and tokenized by the model's own
        tokenizer and sent as the ``prompt`` of ``/completions``; the server must say it read as
        many prompt tokens as were sent, where its reply counts them.

        Raises:
            MalformedReply: the server read another number of prompt tokens than it was sent.
        """
        if self.local is None:
            body = {"model": self.server_model, "messages": messages, **fields}
            return self._send("POST", "/chat/completions", body, starting=starting)
        ids = self.local.prompt_ids(messages)
        body = {"model": self.server_model, "prompt": ids, **fields}
        reply = self._send("POST", "/completions", body, starting=starting)
        read = prompt_tokens_read(reply)
        if read is not None and read != len(ids):
            raise MalformedReply(
                f"the server read {read} prompt tokens where {len(ids)} token ids were sent"
            )
        return reply

    def _prompt_ids(self, request: ScoringRequest) -> list[int]:
        assert self.local is not None
        return self.local.prompt_ids(request.messages())

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, starting: bool = False
    ) -> dict[str, Any]:
        """One API call, retried within ``retry_budget_s``; see :func:`send_json`.

        ``starting``: the calls that start the backend, where a refused connection means a wrong
        ``base_url`` rather than a server restarting, so it is not retried.
        """
        policy = dataclasses.replace(self.retry, retry_refused=False) if starting else self.retry
        if starting and self.local is not None and path == "/completions":
            policy = dataclasses.replace(policy, max_retries=TOKEN_PROBE_RETRIES)
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
    content = token_entries(first_choice(reply))
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
    """The text a chat completion or a completion wrote ("" when there is none).

    Raises:
        MalformedReply: the reply has no ``choices``.
    """
    return choice_text(first_choice(reply))


def _finished_results(futures: Sequence[Future[ScoredPrompt]]) -> dict[int, ScoredPrompt]:
    return {
        index: future.result()
        for index, future in enumerate(futures)
        if future.done() and not future.cancelled() and future.exception() is None
    }
