"""The backend contract: prompts and option labels in, option probabilities out.

A backend is one small class. It takes a batch of :class:`ScoringRequest` (the chat messages and the
labels of the options, in the order they are shown) and returns one :class:`ScoredPrompt` each: the
probability of each label as the model's next token, renormalised over the labels, and the mass the
labels had before renormalising (a low mass means the model wanted to say something else). Backends in
``generate`` mode sample text instead and parse it back to an option
(:mod:`culture_probe.backends.generation`).

Outcomes. ``answered`` results carry a distribution over the labels (in ``generate`` mode one-hot on
the parsed option). ``refused`` and ``invalid`` results carry NO distribution: ``label_probs`` is
empty and ``option_mass`` is 0. Neither uniform nor zeros would be honest: uniform reads as "the model
is undecided", zeros do not sum to 1; an empty vector is what the analysis treats as "no answer"
(a row of NaN probabilities) while it still counts the refusal and invalid rates.

Short answers. Items without options (``kind: short_answer``) are written, whatever the backend's
mode: the runner hands them to :meth:`Backend.write_short_answers`, whose results carry the text in
``generated`` and no distribution. A backend that cannot write text says so with an error.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from culture_probe.errors import CultureProbeError

OUTCOMES = ("answered", "refused", "invalid")


@dataclass(frozen=True)
class ScoringRequest:
    """One prompt to score. ``option_labels`` are in display order ("A", "B", ... as shown)."""

    prompt_id: str
    system: str
    user: str
    option_labels: tuple[str, ...]
    seed: int = 0
    options: tuple[str, ...] = ()  # option texts in display order, for answer parsing
    language: str = "en"

    def messages(self) -> list[dict[str, str]]:
        """Chat messages, with the system message only when there is one."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class ScoredPrompt:
    """The backend's answer for one prompt; ``label_probs`` are in display order and sum to 1.

    ``label_probs`` is empty for a ``refused`` or ``invalid`` outcome (see the module docstring).
    """

    prompt_id: str
    label_probs: tuple[float, ...]
    option_mass: float
    outcome: str = "answered"
    generated: str = ""
    #: "server" when the server, not the model, spoiled the result (a malformed reply): such an
    #: ``invalid`` result is asked again when the run resumes. Empty for the model's own outcome.
    failure: str = ""
    #: the display position chosen under a constraint (``constrained``) or read from a written
    #: answer; -1 where the answer is the most probable label (``first_token``) or there is none
    choice: int = -1


#: backend options that change the answers, so runs that differ in them must not share a key; one
#: left unset (``None``: for ``tail_channels``, mixed's default full split) stays out of it.
#: ``compile`` fuses bfloat16 operations, which rounds differently, so it is one of them, and so is
#: ``fused_layers`` (mixed's fused layers sum a norm in another order: 4e-4 bits apart at most on
#: the test prompts). So is what ran the model: ``kernel`` (the split kernel's build, MKL's fallback,
#: or none), ``revision`` (the hub commit of the weights) and, for a server, its
#: ``system_fingerprint`` (the server's configuration as it reports it), and whether a server's
#: labels outside its top k are scored exactly (``exact_rescore``) or count as 0.
ANSWER_OPTIONS = (
    "temperature",
    "max_tokens",
    "tail_channels",
    "compile",
    "fused_layers",
    "kernel",
    "revision",
    "system_fingerprint",
    "exact_rescore",
)


@dataclass
class BackendInfo:
    """What identifies a backend's answers: goes into the manifest and the cache key."""

    backend: str
    model: str
    model_hash: str
    dtype: str
    mode: str = "logprobs"
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "model_hash": self.model_hash,
            "dtype": self.dtype,
            "mode": self.mode,
            **{
                k: v
                for k, v in sorted(self.options.items())
                if k in ANSWER_OPTIONS and v is not None
            },
        }


class ScoringStopped(CultureProbeError):
    """A backend stopped in the middle of a batch (server gone, request budget spent).

    ``completed`` maps positions in the batch to the results that did arrive, so that the runner
    saves them before it stops; running the same command again scores the rest.
    """

    def __init__(self, message: str, completed: dict[int, ScoredPrompt] | None = None) -> None:
        super().__init__(message)
        self.completed = dict(completed or {})


class Backend(abc.ABC):
    """One model behind one API. Subclasses implement :meth:`score` and :meth:`info`."""

    #: the dataclass declaring the backend's options (:mod:`culture_probe.backends.options`)
    options_class: ClassVar[type[Any]]

    #: how many requests the runner hands over at once; results are saved after each chunk
    preferred_chunk_size: int = 256

    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Model identity, dtype, mode and decoding options."""

    @abc.abstractmethod
    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Score a batch; return one result per request, in the same order."""

    def write_short_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Write one free-text answer per request (requests without option labels)."""
        raise CultureProbeError(
            f"the {self.info().backend} backend cannot write short answers; "
            "score short-answer items with the hf, vllm or openai backend"
        )

    def short_answer_decoding(self) -> dict[str, Any]:
        """Decoding options of :meth:`write_short_answers`; they go into the run key."""
        return {}

    def max_prompt_tokens(self) -> int | None:
        """Tokens a prompt may have: the model's context less what it writes; None: unknown.

        A backend that returns a number also implements :meth:`prompt_lengths`; the runner then
        refuses a plan with a longer prompt before anything is scored
        (:func:`culture_probe.backends.context.check_prompt_lengths`).
        """
        return None

    def max_options(self) -> int | None:
        """The most options one prompt may have; None: any number.

        A backend that reads the server's top ``k`` log-probabilities sees at most ``k`` tokens,
        so with fewer than the options some options would get probability 0 for no reason.
        """
        return None

    def prompt_lengths(self, requests: Sequence[ScoringRequest]) -> list[int]:
        """The number of tokens of each prompt as the model would read it."""
        raise NotImplementedError(f"{type(self).__name__} does not count prompt tokens")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or connections."""


def renormalise(mass_per_label: Sequence[float]) -> tuple[tuple[float, ...], float]:
    """Renormalise label probabilities; uniform when the labels got no mass at all.

    Example:
        >>> renormalise([0.125, 0.375])
        ((0.25, 0.75), 0.5)
    """
    total = float(sum(mass_per_label))
    if total <= 0.0:
        n = len(mass_per_label)
        return tuple(1.0 / n for _ in range(n)), 0.0
    return tuple(float(m) / total for m in mass_per_label), total
