"""The backend contract: prompts and option labels in, option probabilities out.

A backend is one small class. It takes a batch of :class:`ScoringRequest` (the chat messages and the
labels of the options, in the order they are shown) and returns one :class:`ScoredPrompt` each: the
probability of each label as the model's next token, renormalised over the labels, and the mass the
labels had before renormalising (a low mass means the model wanted to say something else). Backends in
``generate`` mode sample text instead and parse it back to an option
(:mod:`culture_probe.backends.generation`).

Elicitation levels. How the answer is asked for is a design factor (the plan's ``elicitation``
column, :data:`culture_probe.columns.ELICITATION_LEVELS`), and each level is one method:

- ``first_token``: :meth:`Backend.score`, as above;
- ``constrained``: :meth:`Backend.score_constrained` samples a label under a constraint that admits
  only the labels, under the prompt's seed: ``choice`` is the display position sampled and
  ``label_probs`` the exact constrained distribution (each label's whole token sequence,
  renormalised over the labels), or one-hot on ``choice`` where the backend cannot give it;
- ``written`` and ``open``: :meth:`Backend.write_answers` writes free text; the scoring loop reads
  it back to an option (:mod:`culture_probe.scoring`).

A backend that lacks a level says so before anything is scored (:func:`check_elicitation`).

Outcomes. ``answered`` results carry a distribution over the labels (in ``generate`` mode one-hot on
the parsed option). ``refused``, ``invalid`` and ``abstained`` results carry NO distribution:
``label_probs`` is empty and ``option_mass`` is 0. Neither uniform nor zeros would be honest: uniform
reads as "the model is undecided", zeros do not sum to 1; an empty vector is what the analysis
treats as "no answer" (a row of NaN probabilities) while it still counts the refusal and invalid
rates. ``abstained`` is an open answer that no rule or judge could assign to one option.

Written answers. Items without options (``kind: short_answer``), and the ``written`` and ``open``
levels, are written whatever the backend's mode: the runner hands them to
:meth:`Backend.write_answers`, whose results carry the text in ``generated``, ``refused`` for a
refusal, and no distribution. A backend that cannot write text says so with an error.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from culture_probe.errors import CultureProbeError

OUTCOMES = ("answered", "refused", "invalid", "abstained")


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

    ``label_probs`` is empty for a ``refused``, ``invalid`` or ``abstained`` outcome (see the
    module docstring).
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
#: ``system_fingerprint`` (the server's configuration as it reports it), whether a server's
#: labels outside its top k are scored exactly (``exact_rescore``) or count as 0, and whether it
#: read the model's own token ids (``prompt_tokens``, with the ``tokenizer`` that made them).
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
    "prompt_tokens",
    "tokenizer",
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

    def score_constrained(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Sample one label per request under a constraint that admits only the labels.

        Each result's ``choice`` is the display position sampled under the request's seed, and
        its ``label_probs`` the exact constrained distribution over the labels (one-hot on
        ``choice`` where the backend cannot compute it).
        """
        raise unsupported_level(self.info().backend, type(self), "constrained")

    def write_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Write one free-text answer per request: ``generated`` holds it, refusals are detected.

        Used for the ``written`` and ``open`` levels and for short-answer items; the results
        carry no distribution (the scoring loop reads the text back to an option).
        """
        raise CultureProbeError(
            f"the {self.info().backend} backend cannot write answers (elicitation 'written' or "
            "'open', or short-answer items); use the hf, vllm or openai backend"
        )

    def short_answer_decoding(self) -> dict[str, Any]:
        """Decoding options of :meth:`write_answers`; they go into the run key."""
        return {}

    @classmethod
    def elicitation_levels(cls) -> tuple[str, ...]:
        """The elicitation levels this backend offers: those whose method it implements.

        A class method, so that a run can refuse a level before the model loads.
        """
        levels = ["first_token"]
        if cls.score_constrained is not Backend.score_constrained:
            levels.append("constrained")
        if cls.write_answers is not Backend.write_answers:
            levels += ["written", "open"]
        return tuple(levels)

    def max_prompt_tokens(self, writing: bool = False) -> int | None:
        """Tokens a prompt may have: the model's context less what it writes; None: unknown.

        ``writing``: the prompt is answered in writing (the ``written`` and ``open`` levels, items
        without options), so the answer's tokens (``max_new_tokens``) need room too.

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


def unsupported_level(name: str, backend: type[Backend], level: str) -> CultureProbeError:
    """The error for a plan that asks a backend for an elicitation level it does not offer."""
    offered = ", ".join(backend.elicitation_levels())
    return CultureProbeError(
        f"the {name} backend cannot elicit answers at level '{level}' (study key 'elicitation'); "
        f"it offers: {offered}"
    )


def check_elicitation(name: str, backend: type[Backend], levels: Iterable[str]) -> None:
    """Refuse, before the model loads or anything is scored, a level the backend does not offer.

    Args:
        name: the backend's name, as the user gave it (``hf``, ``openai``...).
        backend: its class.
        levels: the plan's elicitation levels.

    Raises:
        CultureProbeError: naming the backend and the first level it lacks.
    """
    offered = backend.elicitation_levels()
    for level in levels:
        if level not in offered:
            raise unsupported_level(name, backend, level)


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
