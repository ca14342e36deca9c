"""The ``hf`` backend: a transformers causal language model on the CPU or one GPU.

Scoring reads, after the chat template, the next-token distribution at the last position at the
tokens each option label can start with ("A" and " A" are both counted).

Persona studies repeat long prefixes: the chat template's header, the persona's system message, the
question before the options. By default (``prefix_sharing=True``) the prompts of a call are sorted
by their token ids and laid out as prefix trees: consecutive prompts share the tokens they have in
common, each shared token is computed once, and a pack of up to ``pack_tokens`` tree nodes goes
through the model as one sequence whose attention mask lets each token see exactly its ancestors,
with position ids set to the token's depth. Every prompt's last token then has the same keys, values
and positions as in a forward pass of that prompt alone, so the distribution is the same up to
float rounding; on the values study this computes about 0.55 of the tokens that one pass per prompt
would, with no padding. Attention over a pack gathers, block by block, only the keys the block's
rows can see (:mod:`culture_probe.engine.tree_attention`) instead of masking a dense square.
All of that is the CPU engine (:mod:`culture_probe.engine`), entered through one function,
:func:`culture_probe.engine.prepare`; this module keeps the backend contract: the model's loading,
its chat template, the label tokens, and the reference path through plain transformers.
``prefix_sharing=False`` is the reference: prompts sorted by length, batched with right padding,
the vocabulary projection at each prompt's last token only.

Elicitation levels: :meth:`HFBackend.score` reads the first token; :meth:`HFBackend.score_constrained`
reads the same pass at the prompt's end and after each label prefix that branches, and draws a label
over the labels' trie (:mod:`culture_probe.backends.constrained`); :meth:`HFBackend.write_answers`
generates (:func:`culture_probe.backends.generation.hf_generate`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import culture_probe.engine as engine
from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
)
from culture_probe.backends.constrained import (
    LabelTrie,
    Node,
    constrained_answer,
    draw_seed,
    label_trie,
)
from culture_probe.backends.generation import (
    GenerationSettings,
    hf_generate,
    require_mode,
    short_answer_result,
)
from culture_probe.backends.labels import label_probabilities, label_token_ids
from culture_probe.backends.options import options_record, parse_options
from culture_probe.bounds import NON_NEGATIVE, POSITIVE
from culture_probe.engine.mixed import DEFAULT_TAIL_CHANNELS
from culture_probe.models import ModelSource, converted_copy, load_pretrained, resolve_model

#: kept importable from here: the backend's dtype choice is the engine's
DTYPES = engine.DTYPES
pick_dtype = engine.pick_dtype


@dataclass(frozen=True)
class HFOptions:
    """The ``hf`` backend's options (``--option KEY=VALUE``)."""

    model: str = field(
        default="embedded",
        metadata={"help": "embedded, a model folder, a .gguf file or a hub id (--model)"},
    )
    dtype: str = field(
        default="auto", metadata={"help": f"one of {', '.join(engine.DTYPES)} (--dtype)"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda[:n]"})
    batch_size: int = field(
        default=16,
        metadata={
            "help": "prompts per padded batch without prefix sharing, and per generation batch",
            "range": POSITIVE,
        },
    )
    threads: int | None = field(
        default=None,
        metadata={
            "help": "PyTorch threads while the backend lives; unset: PyTorch's default",
            "range": POSITIVE,
        },
    )
    mode: str = field(default="logprobs", metadata={"help": "logprobs or generate"})
    temperature: float = field(
        default=0.7, metadata={"help": "sampling temperature (generate)", "range": NON_NEGATIVE}
    )
    max_new_tokens: int = field(
        default=32, metadata={"help": "tokens written at most (generate)", "range": POSITIVE}
    )
    prefix_sharing: bool = field(
        default=True,
        metadata={"help": "pack prompts as prefix trees; false: plain transformers batches"},
    )
    pack_tokens: int | None = field(
        default=None,
        metadata={
            "help": "tree nodes per pack; unset: the fastest for the dtype",
            "range": POSITIVE,
        },
    )
    tail_channels: int | None = field(
        default=DEFAULT_TAIL_CHANNELS,
        metadata={
            "help": "mixed: remainder channels per product; unset: every channel",
            "range": NON_NEGATIVE,
        },
    )
    compile: bool = field(
        default=False, metadata={"help": "compile the decoder layers with torch.compile"}
    )
    fused_layers: bool = field(
        default=True, metadata={"help": "mixed: run whole decoder layers around the split kernel"}
    )


#: options the manifest shows as the engine resolved them, or at the top level of the key
_RESOLVED = ("model", "dtype", "mode", "device", "pack_tokens", "tail_channels", "compile",
             "fused_layers", "temperature", "max_new_tokens")  # fmt: skip


class HFBackend(Backend):
    """transformers on CPU or one GPU, scoring option labels by next-token log-probability.

    Process-wide state: ``threads`` sets PyTorch's thread count for the backend's life and
    :meth:`close` puts the old one back; transformers' progress bars are off only while the model
    loads. The allocator settings that cannot be undone are left to
    :func:`culture_probe.engine.tune_process`, which the CLI calls.
    """

    options_class: ClassVar[type] = HFOptions
    # Prompts share prefixes only within one call; a larger chunk finds more of them (on the values
    # study 1,024 computes 4% fewer tokens than 256) and is still saved every minute or two.
    preferred_chunk_size = 1024

    def __init__(self, **raw: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        options = parse_options(HFOptions, raw)
        self.options = options
        self.mode = require_mode(options.mode)
        self.source: ModelSource = resolve_model(options.model)
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = engine.pick_dtype(options.dtype, self.device)
        engine_options = engine.EngineOptions(
            dtype=self.dtype,
            device=self.device,
            pack_tokens=options.pack_tokens,
            tail_channels=options.tail_channels,
            compile=options.compile,
            fused_layers=options.fused_layers,
        ).checked()  # before loading: a wrong option costs no model load
        location = (
            str(converted_copy(self.source)) if self.source.gguf_file else self.source.location
        )
        with engine.quiet_loading():
            self.tokenizer = load_pretrained(AutoTokenizer, location, self.source)
            model_on_host = load_pretrained(
                AutoModelForCausalLM, location, self.source, dtype=engine_options.load_dtype()
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        #: the hub commit the weights came from, where they came from the hub
        self.revision: str | None = getattr(model_on_host.config, "_commit_hash", None)
        self.engine = engine.prepare(model_on_host, self.tokenizer, engine_options)
        self.model = self.engine.model
        self.batch_size = options.batch_size
        self.prefix_sharing = options.prefix_sharing
        self._label_tokens: dict[str, list[int]] = {}
        self.generation = GenerationSettings(
            options.temperature, options.max_new_tokens, batch_rows=options.batch_size
        )
        # last: a backend that fails to build leaves the process's thread count alone
        self._threads = engine.ThreadCount(options.threads)

    def close(self) -> None:
        """Put back the process's thread count (the model goes with the backend)."""
        self._threads.restore()

    @property
    def pack_tokens(self) -> int:
        return int(self.engine.options.pack_tokens or 0)

    @property
    def tail_channels(self) -> int | None:
        return self.engine.options.tail_channels

    @property
    def compiled(self) -> bool:
        return self.engine.options.compile

    @property
    def fused_layers(self) -> int:
        return self.engine.fused_layers

    @property
    def tree_attention(self) -> bool:
        return self.engine.tree_attention

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend="hf",
            model=self.source.name,
            model_hash=self.source.content_hash,
            dtype=self.dtype,
            mode=self.mode,
            options={
                **options_record(self.options, leave_out=_RESOLVED),
                "device": self.device,
                **self.engine.describe(),
                **({"revision": self.revision} if self.revision else {}),
                **self._decoding(),
            },
        )

    def _decoding(self) -> dict[str, Any]:
        if self.mode != "generate":
            return {}
        return {
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_new_tokens,
        }

    def label_token_ids(self, label: str) -> list[int]:
        """Token ids a label can be spoken as in first position: "A" and " A" where distinct."""
        if label not in self._label_tokens:
            self._label_tokens[label] = label_token_ids(self.tokenizer, label)
        return self._label_tokens[label]

    def prompt_text(self, request: ScoringRequest) -> str:
        text = self.tokenizer.apply_chat_template(
            request.messages(), tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def max_prompt_tokens(self, writing: bool = False) -> int | None:
        context = getattr(self.model.config, "max_position_embeddings", None)
        if not context:
            return None
        written = self.generation.max_new_tokens if writing or self.mode == "generate" else 0
        return int(context) - written

    def prompt_lengths(self, requests: Sequence[ScoringRequest]) -> list[int]:
        texts = [self.prompt_text(request) for request in requests]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        if self.mode == "generate":
            return hf_generate(self.model, self.tokenizer, requests, self.generation, self.device)

        results: dict[int, ScoredPrompt] = {}
        for index, log_probs in self._next_token_log_probs(self._encoded(requests)):
            results[index] = self._score_one(requests[index], log_probs)
        return [results[index] for index in range(len(requests))]

    def score_constrained(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """A label drawn under the labels' trie, and the exact constrained distribution.

        The next-token log-probabilities are read at the prompt's end and after each label prefix
        that branches (:mod:`culture_probe.backends.constrained`), through the same forward pass
        as :meth:`score`; the draw is seeded by the prompt's seed and messages
        (:func:`culture_probe.backends.constrained.draw_seed`).
        """
        prompts = self._encoded(requests)
        tries = [label_trie(self.tokenizer, request.option_labels) for request in requests]
        reads_at = [
            (index, node) for index, trie in enumerate(tries) for node in trie.branching_nodes()
        ]
        sequences = [prompts[index] + list(node) for index, node in reads_at]
        reads: list[dict[Node, dict[int, float]]] = [{} for _ in requests]
        for position, log_probs in self._next_token_log_probs(sequences):
            index, node = reads_at[position]
            reads[index][node] = {
                token: float(log_probs[token]) for token in tries[index].children[node]
            }
        return [
            self._constrained_one(request, trie, node_reads)
            for request, trie, node_reads in zip(requests, tries, reads, strict=True)
        ]

    def _constrained_one(
        self, request: ScoringRequest, trie: LabelTrie, reads: dict[Node, dict[int, float]]
    ) -> ScoredPrompt:
        answer = constrained_answer(trie, reads, draw_seed(request))
        return ScoredPrompt(request.prompt_id, answer.probs, answer.mass, choice=answer.choice)

    def _encoded(self, requests: Sequence[ScoringRequest]) -> list[list[int]]:
        return [
            self.tokenizer.encode(self.prompt_text(r), add_special_tokens=False) for r in requests
        ]

    def _next_token_log_probs(self, sequences: list[list[int]]) -> Iterator[tuple[int, Any]]:
        """``(index, log-probabilities over the vocabulary)`` after each sequence, in any order.

        Through the engine's prefix trees, or (``prefix_sharing=False``) the reference path.
        """
        if self.prefix_sharing:
            for members, log_probs in self.engine.log_probs_at_ends(sequences):
                for row, index in enumerate(members):
                    yield index, log_probs[row]
            return
        yield from self._batched_log_probs(sequences)

    def write_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Sampled free-text answers (greedy at ``temperature=0``), each under its prompt's seed."""
        return hf_generate(
            self.model,
            self.tokenizer,
            requests,
            self.generation,
            self.device,
            read=short_answer_result,
        )

    def short_answer_decoding(self) -> dict[str, Any]:
        return {
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_new_tokens,
        }

    def _batched_log_probs(self, encoded: list[list[int]]) -> Iterator[tuple[int, Any]]:
        """Sequences sorted by length, in right-padded batches of ``batch_size``."""
        import torch

        order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                log_probs = self._last_token_log_probs([encoded[index] for index in batch])
                for row, index in enumerate(batch):
                    yield index, log_probs[row]

    def _last_token_log_probs(self, sequences: list[list[int]]) -> Any:
        """Log-probabilities after each sequence's last token, from one right-padded batch.

        Padding goes after the tokens: under the causal mask no real token sees it, so no
        attention mask is needed. Left padding would leave the padding rows with nothing to
        attend to, and scaled-dot-product attention may fill such rows with NaN, which then
        reaches the real tokens through the values of the next layer.
        """
        import torch

        width = max(len(sequence) for sequence in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
        hidden = self.model.model(
            input_ids=input_ids.to(self.device), use_cache=False
        ).last_hidden_state
        last = torch.tensor([len(sequence) - 1 for sequence in sequences], device=self.device)
        logits = self.model.lm_head(hidden[torch.arange(len(sequences)), last])
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _score_one(self, request: ScoringRequest, log_probs: Any) -> ScoredPrompt:
        probs, mass = label_probabilities(
            lambda token: float(log_probs[token]),
            [self.label_token_ids(label) for label in request.option_labels],
        )
        return ScoredPrompt(request.prompt_id, probs, mass)
