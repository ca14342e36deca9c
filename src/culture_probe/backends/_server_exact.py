"""Exact option scores from a server, for labels outside its top-k log-probabilities.

A chat completion reports the log-probabilities of the ``k`` most likely next tokens (at most 20),
so a label the model finds less likely than the 20th token would read as 0. The probability of a
label is instead read as the log-probability of its continuation: the model's log-probability of
the label's tokens, one after the other, right after the prompt (all tokens of a label such as
"10" or "Zebra", not only the first). Two ways to have a server compute it:

- a constraint: a chat completion with a grammar (llama.cpp's ``grammar``, vLLM's
  ``guided_choice``) that admits the label alone. The server writes the label and reports each of
  its tokens' log-probability as the model gave it, before the constraint.
- prompt log-probabilities: ``/completions`` with ``echo`` and ``logprobs`` on the prompt text
  followed by the label. The server reports the log-probability of every token of what it was
  sent, the label's included. It needs the prompt as the server's chat template renders it
  (:class:`ChatTemplate`); llama.cpp's ``llama_cpp.server`` gives them when started with
  ``--logits_all true``, ``vllm serve`` always.

Either way is checked once against the top-k pass before it is trusted
(:func:`reference_token`): a server that reports a constrained log-probability, or a chat
template that renders the prompt differently from the server's, gives another number for a token
the top-k list already holds.

This module holds what does not send requests: grammars, reading replies, rendering chat
templates, and the counters the manifest records.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from culture_probe.backends.base import ScoringRequest, renormalise
from culture_probe.backends.constrained import draw_seed
from culture_probe.backends.labels import label_spellings
from culture_probe.errors import CultureProbeError

#: how far (in log-probability) an exact method may read a top-k token's value and still be
#: trusted. A server's numbers for one prompt move with how it evaluates it: llama.cpp evaluates
#: only the part of a prompt its cache does not hold, and a prompt evaluated in one batch or in
#: two gives log-probabilities up to 0.03 apart (measured on the embedded model). A constrained
#: log-probability (0 for a forced token) is far further from the least likely top-k token.
AGREEMENT_TOLERANCE = 0.1
#: the ways of rescoring, in the order ``auto`` tries them: both give the same numbers where both
#: pass their check, and on llama_cpp.server a constrained request costs an eighth of an echoed one
#: (which returns every prompt token's log-probabilities, each after a sort of the vocabulary)
METHODS = ("grammar", "prompt_logprobs")


class Unavailable(CultureProbeError):
    """This way of scoring a label exactly does not work on this server (the message says why)."""


class NotALabelToken(Unavailable):
    """A spelling that is no token of its own after the prompt.

    " 1" after a prompt ending in a newline is read as the tokens "\n " and "1", or is written
    as " " then "1": no first token spells the label, so the spelling counts 0, as
    :func:`culture_probe.backends.labels.label_token_ids` counts it on ``hf`` and ``vllm``.
    """


def labels_outside(top: Mapping[str, float], labels: Sequence[str]) -> list[str]:
    """The labels none of whose spellings ("A", " A") is among the top-k tokens.

    Such a label would count as 0; a label with one spelling in the top k is known to at most the
    k-th token's probability per missing spelling.

    Example:
        >>> labels_outside({"A": -0.1, " B": -3.0}, ["A", "B", "C"])
        ['C']
    """
    return [
        label for label in labels if not any(spelling in top for spelling in label_spellings(label))
    ]


def reference_token(top: Mapping[str, float]) -> str | None:
    """The least likely printable token of a top-k list: the check an exact method must pass.

    The least likely one, since a server that reports the constrained log-probability (0 for a
    token it was forced to write) is told apart best on a token far from probability 1. A token
    that a more likely token of the list begins ("If" after "I") is passed over: a grammar that
    admits "If" alone lets the server write "I" first, then "f", and their log-probabilities
    are not that of the token "If". A beginning outside the top k is less likely than the token,
    so the constrained answer then writes the token itself.

    Example:
        >>> reference_token({"B": -1.0, "The": -2.8, "\\n": -3.5})
        'The'
        >>> reference_token({"I": -1.0, "The": -2.8, "If": -5.1})
        'The'
    """
    # a token led by a space may join the prompt's last token when sent after it
    printable = [t for t in top if t.strip() and t.isprintable() and not t[0].isspace()]
    whole = [
        token
        for token in printable
        if not any(
            other != token and token.startswith(other) and top[other] > top[token] for other in top
        )
    ]
    return min(whole, key=lambda token: top[token]) if whole else None


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (llama.cpp's grammars), quotes and escapes included.

    Example:
        >>> gbnf_literal('say "A"')
        '"say \\\\"A\\\\""'
    """
    return json.dumps(text, ensure_ascii=False)


def label_grammar(labels: Sequence[str]) -> str:
    """A GBNF grammar whose sentences are exactly the labels.

    Example:
        >>> label_grammar(["A", "B"])
        'root ::= "A" | "B"'
    """
    return "root ::= " + " | ".join(gbnf_literal(label) for label in dict.fromkeys(labels))


def constraint_fields(texts: Sequence[str]) -> dict[str, Any]:
    """Request fields that admit only ``texts``: llama.cpp's ``grammar``, vLLM's ``guided_choice``.

    Each server reads its own field and ignores the other's.
    """
    return {"grammar": label_grammar(texts), "guided_choice": list(dict.fromkeys(texts))}


def all_spellings(labels: Sequence[str]) -> list[str]:
    """Every spelling of every label ("A", " A", "B", " B"): what a constrained answer may write.

    Example:
        >>> all_spellings(["A", "B"])
        ['A', ' A', 'B', ' B']
    """
    return [spelling for label in labels for spelling in label_spellings(label)]


def echo_continuation_logprob(reply: Mapping[str, Any], continuation: str) -> float:
    """The log-probability of ``continuation`` at the end of an echoed ``/completions`` prompt.

    The reply echoes the prompt's tokens with their log-probabilities, then the tokens it wrote
    (``usage.completion_tokens`` of them). The continuation's tokens are the last prompt tokens
    whose texts add up to it.

    Raises:
        Unavailable: the reply has no prompt log-probabilities, or the continuation shares a
            token with the prompt before it, so that its tokens cannot be told apart.
    """
    logprobs = _first_choice(reply).get("logprobs")
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or not isinstance(values, list) or not tokens:
        raise Unavailable("the /completions reply has no prompt log-probabilities (echo)")
    usage = reply.get("usage")
    written = usage.get("completion_tokens", 0) if isinstance(usage, dict) else 0
    end = len(tokens) - int(written or 0)
    return _sum_tail(tokens[:end], values[:end], continuation)


def _sum_tail(tokens: Sequence[Any], values: Sequence[Any], continuation: str) -> float:
    text, total = "", 0.0
    for token, value in zip(reversed(tokens), reversed(values), strict=True):
        text = str(token) + text
        if value is None:
            break
        total += float(value)
        if text == continuation:
            _check_first_token(str(token), continuation)
            return _finite(total, continuation)
        if not continuation.endswith(text):
            break
    raise NotALabelToken(
        f"{continuation!r} is not a whole number of tokens after the prompt (its first token "
        f"joins the prompt's last: {text!r})"
    )


def _check_first_token(first: str, continuation: str) -> None:
    if continuation.strip() and not first.strip():
        raise NotALabelToken(f"{continuation!r} starts with the token {first!r}")


def forced_continuation_logprob(
    reply: Mapping[str, Any],
    continuation: str,
    expected: Sequence[tuple[int, str]] | None = None,
) -> float:
    """The summed log-probability of the tokens a completion was constrained to write.

    ``expected``: the tokens (id and text) the model's own tokenizer gives the continuation
    (``prompt_tokens=local``); the server must have written these, compared by id where the reply
    names ids (llama-server), else by text, so that the sum is over the tokens ``hf`` reads.

    Raises:
        Unavailable: the server wrote something else (it ignored the constraint), wrote it as
            other tokens, or reported no log-probabilities.
    """
    choice = _first_choice(reply)
    written = choice_text(choice)
    if written != continuation:
        raise Unavailable(
            f"the server ignored the constraint: asked to write {continuation!r}, it wrote "
            f"{written[:40]!r}"
        )
    content = token_entries(choice)
    if not content:
        raise Unavailable("the constrained reply has no log-probabilities")
    try:
        total = sum(float(entry["logprob"]) for entry in content)
        first = str(content[0]["token"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise Unavailable(
            f"the constrained reply's log-probabilities do not read: {error}"
        ) from None
    if expected is not None and [written_as(entry, expected) for entry in content] != list(
        expected
    ):
        raise Unavailable(
            f"the server wrote {continuation!r} as the tokens "
            f"{[entry.get('token') for entry in content]}, the model's tokenizer as "
            f"{[text for _, text in expected]}"
        )
    _check_first_token(first, continuation)
    return _finite(total, continuation)


def written_as(entry: Mapping[str, Any], expected: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """A written token as ``(id, text)``, its id taken from ``expected`` where the reply has none."""
    text = str(entry.get("token"))
    token_id = entry.get("id")
    if not isinstance(token_id, int):
        token_id = next((i for i, t in expected if t == text), -1)
    return token_id, text


def choice_text(choice: Mapping[str, Any]) -> str:
    """The text a reply's choice wrote: a chat message's content, or a completion's ``text``."""
    message = choice.get("message")
    if isinstance(message, dict):
        return str(message.get("content") or "")
    return str(choice.get("text") or "")


def token_entries(choice: Mapping[str, Any]) -> list[Any] | None:
    """The written tokens of a reply's choice with their log-probabilities; None if absent.

    Each entry reads as the chat format has it, ``{"token", "logprob", "top_logprobs": [{"token",
    "logprob"}, ...]}`` (llama-server adds each token's ``id``). Chat completions and
    ``llama-server``'s ``/completions`` reply in that format; the OpenAI legacy completions format
    (vLLM's ``/completions``: ``tokens``, ``token_logprobs``, ``top_logprobs`` as one table of
    token text to log-probability per token) is turned into it.

    Example:
        >>> legacy = {"tokens": ["1"], "token_logprobs": [-0.5], "top_logprobs": [{"1": -0.5}]}
        >>> token_entries({"text": "1", "logprobs": legacy})
        [{'token': '1', 'logprob': -0.5, 'top_logprobs': [{'token': '1', 'logprob': -0.5}]}]
    """
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list):
        return content
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list):
        return None
    tables = logprobs.get("top_logprobs")
    tables = tables if isinstance(tables, list) else []
    entries = []
    for position, (token, value) in enumerate(zip(tokens, values, strict=False)):
        table = tables[position] if position < len(tables) else None
        alternatives = table.items() if isinstance(table, dict) else ()
        entries.append(
            {
                "token": token,
                "logprob": value,
                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives],
            }
        )
    return entries


def echo_tail_logprob(reply: Mapping[str, Any], count: int) -> float:
    """The summed log-probability of the last ``count`` tokens of an echoed token-id prompt.

    Raises:
        Unavailable: the reply has no prompt log-probabilities for them.
    """
    logprobs = _first_choice(reply).get("logprobs")
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(values, list) or not values:
        raise Unavailable("the /completions reply has no prompt log-probabilities (echo)")
    usage = reply.get("usage")
    written = usage.get("completion_tokens", 0) if isinstance(usage, dict) else 0
    end = len(values) - int(written or 0)
    tail = values[max(0, end - count) : end]
    if len(tail) != count or any(value is None for value in tail):
        raise Unavailable("the /completions reply has no log-probabilities for the label's tokens")
    return _finite(sum(float(value) for value in tail), f"{count} tokens")


def prompt_tokens_read(reply: Mapping[str, Any]) -> int | None:
    """How many prompt tokens the server says it read (``usage.prompt_tokens``), if it says."""
    usage = reply.get("usage")
    read = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return read if isinstance(read, int) and not isinstance(read, bool) else None


def _finite(total: float, continuation: str) -> float:
    if math.isnan(total):
        raise Unavailable(f"the server gave {continuation!r} the log-probability NaN")
    return total


def _first_choice(reply: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Unavailable("the reply has no choices")
    choice: Mapping[str, Any] = choices[0]
    return choice


def first_token_probabilities(
    logprob_per_spelling: Mapping[str, float], labels: Sequence[str]
) -> tuple[tuple[float, ...], float]:
    """Option probabilities from exact continuation log-probabilities of each label's spellings.

    A label's probability is the sum over its spellings ("A", " A"), as the top-k pass and the
    ``hf`` backend count it (:mod:`culture_probe.backends.labels`), then renormalised. A spelling
    missing from ``logprob_per_spelling`` counts 0 (:class:`NotALabelToken`). The same numbers are
    the exact distribution of a constrained answer, which writes one of the spellings: sampling
    under the constraint at temperature 1 draws each with its continuation probability over that
    of all (exactly so where no two spellings share a first token).

    Example:
        >>> table = {"A": math.log(0.5), " A": math.log(0.1), "B": math.log(0.2)}
        >>> probs, mass = first_token_probabilities(table, ["A", "B"])
        >>> [round(p, 3) for p in probs], round(mass, 3)
        ([0.75, 0.25], 0.8)
    """
    return renormalise(
        [
            sum(
                math.exp(logprob_per_spelling[spelling])
                for spelling in label_spellings(label)
                if spelling in logprob_per_spelling
            )
            for label in labels
        ]
    )


def server_draw_seed(request: ScoringRequest) -> int:
    """The seed a server draws a constrained answer under: the prompt's seed and its messages.

    One non-negative 31-bit number (what llama.cpp and vLLM take), from the same seed and messages
    as the ``hf`` backend's draw (:func:`culture_probe.backends.constrained.draw_seed`), so that
    prompts asked under one seed draw independently and a prompt asked again draws the same label.
    """
    state = np.random.SeedSequence(draw_seed(request)).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def chosen_label(text: str, labels: Sequence[str]) -> int:
    """The display position of the label a constrained completion wrote; -1 if it wrote none."""
    written = text.strip()
    return labels.index(written) if written in labels else -1


class RescoreStats:
    """Thread-safe counts of the exact rescoring: prompts, requests, seconds, the method used."""

    def __init__(self) -> None:
        self.prompts = 0
        self.requests = 0
        self.seconds = 0.0
        self.failed = 0
        self._lock = threading.Lock()

    def record(self, requests: int, seconds: float, failed: bool = False) -> None:
        with self._lock:
            self.prompts += 1
            self.requests += requests
            self.seconds += seconds
            self.failed += int(failed)

    def as_options(self) -> dict[str, Any]:
        """The counts as the manifest records them (``rescored_prompts``, ``rescore_s``, ...)."""
        with self._lock:
            return {
                "rescored_prompts": self.prompts,
                "rescore_requests": self.requests,
                "rescore_s": round(self.seconds, 3),
                "rescore_failed": self.failed,
            }


@dataclass(frozen=True)
class ChatTemplate:
    """A model's Jinja chat template, rendered as transformers and llama.cpp's server render it.

    Attributes:
        source: where the template came from (a file or folder), for messages.
        template: the Jinja text.
        bos_token: the text of the model's begin-of-sequence token ("" if none).
        eos_token: the text of its end-of-sequence token.
    """

    source: str
    template: str
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt text of a chat, ready for the assistant's answer."""
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        # the environment transformers and llama-cpp-python both use for chat templates
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = raise_exception
        try:
            return environment.from_string(self.template).render(
                messages=list(messages),
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=True,
            )
        except TemplateError as error:
            raise Unavailable(f"the chat template of {self.source} fails: {error}") from None


def chat_template_from(source: str) -> ChatTemplate:
    """The chat template in a ``.gguf`` file, a model folder, a Jinja file, or the embedded model.

    Raises:
        Unavailable: nothing at ``source`` holds a chat template.
    """
    if source == "embedded":
        from culture_probe.models import embedded_gguf

        source = str(embedded_gguf())
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_template(path)
    if path.is_dir() and (path / "tokenizer_config.json").is_file():
        return _folder_template(path)
    if path.is_file():
        return ChatTemplate(str(path), path.read_text(encoding="utf-8"))
    raise Unavailable(
        f"no chat template at {source!r}: expected a .gguf file, a model folder with "
        "tokenizer_config.json, or a Jinja file (--option chat_template)"
    )


def _gguf_template(path: Path) -> ChatTemplate:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def text(key: str) -> str | None:
        entry = reader.fields.get(key)
        return None if entry is None else bytes(entry.parts[entry.data[0]]).decode("utf-8")

    def token(key: str) -> str:
        entry, tokens = reader.fields.get(key), reader.fields.get("tokenizer.ggml.tokens")
        if entry is None or tokens is None:
            return ""
        index = int(entry.parts[entry.data[0]][0])
        return bytes(tokens.parts[tokens.data[index]]).decode("utf-8")

    template = text("tokenizer.chat_template")
    if template is None:
        raise Unavailable(f"{path} holds no chat template (tokenizer.chat_template)")
    return ChatTemplate(
        str(path),
        template,
        token("tokenizer.ggml.bos_token_id"),
        token("tokenizer.ggml.eos_token_id"),
    )


def _folder_template(path: Path) -> ChatTemplate:
    config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = config.get("chat_template")
    jinja = path / "chat_template.jinja"
    if template is None and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if isinstance(template, list):  # named templates: the default one
        named = {entry.get("name"): entry.get("template") for entry in template}
        template = named.get("default")
    if not isinstance(template, str):
        raise Unavailable(f"{path} holds no chat template (tokenizer_config.json)")

    def token(key: str) -> str:
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        return str(value or "")

    return ChatTemplate(str(path), template, token("bos_token"), token("eos_token"))
