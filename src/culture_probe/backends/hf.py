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
rows can see (:mod:`culture_probe.backends.tree_attention`) instead of masking a dense square.
``prefix_sharing=False`` is the reference: prompts sorted by length, batched with right padding,
the vocabulary projection at each prompt's last token only.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
)
from culture_probe.backends.fused import keeps_leaf_rows, use_fused_layers
from culture_probe.backends.generation import (
    GenerationSettings,
    hf_generate,
    require_mode,
    short_answer_result,
)
from culture_probe.backends.labels import label_probabilities, label_token_ids
from culture_probe.backends.mixed import (
    CALIBRATION_MESSAGES,
    DEFAULT_TAIL_CHANNELS,
    calibrate_tail_channels,
    use_compilable_products,
    use_mixed_precision,
)
from culture_probe.backends.split_kernel import kernel_unavailable_reason, split_kernel
from culture_probe.backends.tree_attention import (
    DEFAULT_BLOCK_ROWS,
    tree_blocks,
    use_tree_attention,
)
from culture_probe.errors import CultureProbeError
from culture_probe.models import ModelSource, converted_copy, resolve_model

DTYPES = ("auto", "mixed", "bfloat16", "float16", "float32")

#: tree nodes per packed sequence, by dtype. With attention gathered block by block, a bigger pack
#: shares more prefixes and feeds the matrix products more rows, until its activations outgrow the
#: caches. Measured on 600 values-study prompts (best of 4, one process, packs of 1,024 / 2,048 /
#: 4,096 / 8,192 nodes): bfloat16 65.8 / 80.3 / 88.7 prompts/s, and 77.9 / 87.9 / 91.1 in a second
#: sweep; mixed 32.1 / 36.3 / 33.1 with packs of 512 / 1,024 / 2,048 (40.0 / 47.9 / 46.5 with 64
#: tail channels); float32 22.5 / 21.6 with 512 / 1,024. With attention batched over blocks and the
#: heap kept (:func:`reuse_freed_activations`): bfloat16 85.9 / 91.8 / 88.3 with 2,048 / 4,096 /
#: 8,192; mixed 35.9 / 36.4 / 35.6 with 1,024 / 2,048 / 4,096, so it keeps the smaller pack. With
#: the split kernel (600 prompts, best of 3 taking turns): mixed 33.6 / 30.1 / 31.4, compiled
#: 36.3 / 38.6 / 35.0, within the host's spread of each other.
PACK_TOKENS = {"bfloat16": 4096, "float16": 4096, "mixed": 1024, "float32": 512}
DEFAULT_PACK_TOKENS = PACK_TOKENS["float32"]

#: query rows per attention block, by dtype (see :mod:`culture_probe.backends.tree_attention`).
#: mixed attends in float32, where the keys a block pads to cost most: with fused layers, on
#: every 4th values-study prompt (three turns each), blocks of 32 rows scored 50.6 / 53.8 / 53.9
#: prompts/s against 49.6 / 51.3 / 50.9 with 64 (120 query-key pairs a node, padding included,
#: against 151). With the kernel attending (no block padded to the widest), 200 prompts scored
#: 17.5 / 19.2 / 18.5 prompts/s with blocks of 16 / 32 / 64 rows (mean of three turns each).
BLOCK_ROWS = {"mixed": 32}

#: prompt ends that go through the vocabulary projection together. A pack ends only 20 or so
#: prompts, and the projection's float32 weight (113 MB for the embedded model) is read from memory
#: once a call: one call for several packs read it once for all of them (3% of mixed's scoring
#: time before, with 256). 256 rows of logits and log-probabilities take 100 MB.
LEAVES_PER_PROJECTION = 256


def default_pack_tokens(dtype: str) -> int:
    """The pack size that scored fastest for a dtype (see :data:`PACK_TOKENS`)."""
    return PACK_TOKENS.get(dtype, DEFAULT_PACK_TOKENS)


@dataclass
class PrefixTreePack:
    """Prompts laid out as one sequence of prefix-tree nodes.

    Attributes:
        token_ids: the token of each node, in depth-first order.
        positions: each node's depth in its prompt (the position id it would have alone).
        ancestors: for each node, the nodes on its path from the root, itself included.
        members: the caller's index of each prompt in the pack.
        leaves: for each member, the node holding its last token.
    """

    token_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    ancestors: list[list[int]] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)

    def attention_mask(self) -> Any:
        """``[1, 1, n, n]`` booleans: node i attends to node j when j is on i's path."""
        import torch

        size = len(self.token_ids)
        mask = torch.zeros((size, size), dtype=torch.bool)
        for node, path in enumerate(self.ancestors):
            mask[node, path] = True
        return mask[None, None]


def pack_prefix_trees(
    sequences: Sequence[Sequence[int]], pack_tokens: int = DEFAULT_PACK_TOKENS
) -> list[PrefixTreePack]:
    """Lay out token sequences as prefix trees, at most ``pack_tokens`` nodes a pack.

    Sequences are visited in lexicographic order, so each shares the longest possible prefix with
    the one before it; a sequence that does not fit starts a new pack (one longer than
    ``pack_tokens`` gets a pack of its own). Identical sequences share all their nodes.

    Example:
        >>> [pack] = pack_prefix_trees([[1, 2, 3], [1, 2, 4]])
        >>> pack.token_ids, pack.positions, pack.leaves
        ([1, 2, 3, 4], [0, 1, 2, 2], [2, 3])
    """
    order = sorted(range(len(sequences)), key=lambda index: list(sequences[index]))
    packs: list[PrefixTreePack] = []
    pack = PrefixTreePack()
    path: list[int] = []
    previous: Sequence[int] = ()
    for index in order:
        sequence = sequences[index]
        if not sequence:
            raise ValueError(f"sequence {index} is empty: nothing to score")
        shared = _common_prefix_length(previous, sequence) if pack.members else 0
        if pack.members and len(pack.token_ids) + len(sequence) - shared > pack_tokens:
            packs.append(pack)
            pack, shared = PrefixTreePack(), 0
        del path[shared:]
        for depth in range(shared, len(sequence)):
            path.append(len(pack.token_ids))
            pack.token_ids.append(int(sequence[depth]))
            pack.positions.append(depth)
            pack.ancestors.append(list(path))
        pack.members.append(index)
        pack.leaves.append(path[len(sequence) - 1])
        previous = sequence
    if pack.members:
        packs.append(pack)
    return packs


def _common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def pick_dtype(requested: str, device: str) -> str:
    """What ``auto`` means on a device; other choices are checked and kept.

    On a CPU where the split kernel runs (:mod:`culture_probe.backends.split_kernel`: AMX tiles,
    or AVX-512's VNNI dot products) that is ``mixed`` (bfloat16 or int16 matrix products with
    float32 sums, float32 elsewhere: see :mod:`culture_probe.backends.mixed`), which is faster
    than float32 there and, unlike plain bfloat16, keeps option distributions within 0.01 bits of
    it (on an AMD EPYC Zen 4, 17.6 against 6.2 prompts/s for float32 in padded batches, 0.0040
    bits at most). On other CPUs it is float32: without the kernel
    ``mixed`` falls back on MKL's products, which on that same Zen 4 ran at float32's speed per
    product, so its two products per projection scored 0.6 times as fast as float32 itself (7.6
    against 12.5 prompts/s). On a GPU it is bfloat16 (float16 where bfloat16 is missing).
    """
    if requested not in DTYPES:
        raise CultureProbeError(f"unknown dtype {requested!r}: expected one of {', '.join(DTYPES)}")
    on_gpu = device.startswith("cuda")
    if requested == "mixed" and on_gpu:
        raise CultureProbeError("--dtype mixed is for CPUs; on a GPU use bfloat16 or float32")
    if requested != "auto":
        return requested
    if on_gpu:
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "mixed" if split_kernel() is not None else "float32"


class HFBackend(Backend):
    """transformers on CPU or one GPU, scoring option labels by next-token log-probability."""

    # Prompts share prefixes only within one call; a larger chunk finds more of them (on the values
    # study 1,024 computes 4% fewer tokens than 256) and is still saved every minute or two.
    preferred_chunk_size = 1024

    def __init__(
        self,
        model: str = "embedded",
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        threads: int | None = None,
        mode: str = "logprobs",
        temperature: float = 0.7,
        max_new_tokens: int = 32,
        prefix_sharing: bool = True,
        pack_tokens: int | None = None,
        tail_channels: int | None = DEFAULT_TAIL_CHANNELS,
        compile: bool = False,
        fused_layers: bool = True,
        **_: Any,
    ) -> None:
        # MKL's own allocator pools the packing buffers of the bfloat16 products and grew by a
        # varying 0.1-0.6 GB per process here; plain malloc/free keeps peak memory steady at the
        # same speed. MKL reads this before its first allocation, so it goes before any tensor.
        os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
        reuse_freed_activations()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        # our own progress bar reports the scoring; the loader's bars would only clutter it
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if threads:
            torch.set_num_threads(threads)
        self.source: ModelSource = resolve_model(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = pick_dtype(dtype, self.device)
        self.tail_channels = (
            _checked_tail_channels(tail_channels) if self.dtype == "mixed" else None
        )
        self.compiled = _checked_compile(compile, self.dtype, self.tail_channels)
        if not isinstance(fused_layers, bool):
            raise CultureProbeError(
                f"--option fused_layers expects true or false, got {fused_layers!r}"
            )
        location = (
            str(converted_copy(self.source)) if self.source.gguf_file else self.source.location
        )
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # under mixed the layers compute in float32 around their bfloat16 products
        self.activation_dtype = getattr(torch, "float32" if self.dtype == "mixed" else self.dtype)
        model_on_host = AutoModelForCausalLM.from_pretrained(location, dtype=self.activation_dtype)
        if self.dtype == "mixed":
            # weights packed for the split kernel at once, unless tail channels are calibrated first
            use_mixed_precision(model_on_host, pack=self.tail_channels is None)
            _copy_out_of_the_file(model_on_host)
            if self.tail_channels is not None:
                calibrate_tail_channels(
                    model_on_host, self._calibration_tokens(), self.tail_channels
                )
        self.model = model_on_host.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.tree_attention = self._try_tree_attention()
        self.batch_size = batch_size
        self.prefix_sharing = prefix_sharing
        self.pack_tokens = pack_tokens or default_pack_tokens(self.dtype)
        self._label_tokens: dict[str, list[int]] = {}
        self.mode = require_mode(mode)
        self.generation = GenerationSettings(temperature, max_new_tokens)
        self.fused_layers = self._fuse_layers(fused_layers)
        if self.compiled:
            self._compile_decoder_layers()

    def _fuse_layers(self, requested: bool) -> int:
        """Fuse the decoder layers around the split kernel where they can be; how many were."""
        # compiled layers fuse their own elementwise work; tail channels and MKL have no kernel
        if not requested or self.compiled or self.dtype != "mixed" or not self.tree_attention:
            return 0
        return use_fused_layers(self.model)

    def _compile_decoder_layers(self) -> None:
        """Fuse each decoder layer's elementwise work with ``torch.compile``, compiling at load.

        Warm-up packs of 2, 3 and 1 attention blocks compile the layer for a fixed block count,
        then for any count, one included, so scoring itself does not stop to compile (two graphs in
        all); a missing C++ compiler shows here, not in the middle of a run.
        """
        import torch
        from torch.fx.experimental import _config as fx_config

        layers = getattr(getattr(self.model, "model", None), "layers", None)
        if not isinstance(layers, torch.nn.ModuleList):
            raise CultureProbeError(
                f"--option compile=true compiles the decoder layers at model.model.layers, which "
                f"{self.source.name} does not have; leave the option out"
            )
        if self.dtype == "mixed":
            use_compilable_products(self.model)
        for layer in layers:
            layer.compile(dynamic=True)
        tokens = self._calibration_tokens()
        try:
            # sizes that happen to be equal in a warm-up pack (its width and its rows, say) would
            # otherwise be compiled as one and recompiled when a real pack tells them apart
            # (``patch`` is made at run time by torch's config module, so the stubs lack it)
            no_duck_shapes = fx_config.patch(use_duck_shape=False)  # type: ignore[attr-defined]
            with torch.inference_mode(), no_duck_shapes:
                rows = BLOCK_ROWS.get(self.dtype, DEFAULT_BLOCK_ROWS)
                for nodes in (rows * 2 - 8, rows * 3 - 8, 8):
                    [pack] = pack_prefix_trees([(tokens * 4)[:nodes]], nodes)
                    self._leaf_log_probs(pack)
        except Exception as error:  # torch.compile raises many kinds; all mean the same here
            summary = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise CultureProbeError(
                f"--option compile=true: torch.compile could not compile {self.source.name} "
                f"({type(error).__name__}: {summary}). On a CPU it needs a C++ compiler (g++); "
                f"leave the option out to run uncompiled"
            ) from error

    def _calibration_tokens(self) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            list(CALIBRATION_MESSAGES), tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer.encode(str(text), add_special_tokens=False))

    def _try_tree_attention(self) -> bool:
        """Sparse attention over packs where the architecture takes transformers' interface."""
        try:
            use_tree_attention(self.model)
        except (ValueError, NotImplementedError):
            return False  # packs then go through the dense mask
        return True

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend="hf",
            model=self.source.name,
            model_hash=self.source.content_hash,
            dtype=self.dtype,
            mode=self.mode,
            options={
                "device": self.device,
                "batch_size": self.batch_size,
                "prefix_sharing": self.prefix_sharing,
                "pack_tokens": self.pack_tokens,
                **({"tail_channels": self.tail_channels} if self.dtype == "mixed" else {}),
                **({"compile": True} if self.compiled else {}),
                **({"fused_layers": self.fused_layers} if self.dtype == "mixed" else {}),
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

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        if self.mode == "generate":
            return hf_generate(self.model, self.tokenizer, requests, self.generation, self.device)

        encoded = [
            self.tokenizer.encode(self.prompt_text(r), add_special_tokens=False) for r in requests
        ]
        if self.prefix_sharing:
            return self._score_packed(requests, encoded)
        return self._score_batched(requests, encoded)

    def write_short_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
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

    def _score_packed(
        self, requests: Sequence[ScoringRequest], encoded: list[list[int]]
    ) -> list[ScoredPrompt]:
        import torch

        results: dict[int, ScoredPrompt] = {}
        waiting: list[tuple[list[int], Any]] = []  # each pack's members and their last states

        def project_waiting() -> None:
            members = [index for pack_members, _ in waiting for index in pack_members]
            log_probs = self._log_probs(torch.cat([states for _, states in waiting]))
            for row, index in enumerate(members):
                results[index] = self._score_one(requests[index], log_probs[row])
            waiting.clear()

        with torch.inference_mode():
            for pack in pack_prefix_trees(encoded, self.pack_tokens):
                waiting.append((pack.members, self._leaf_states(pack)))
                if sum(len(members) for members, _ in waiting) >= LEAVES_PER_PROJECTION:
                    project_waiting()
            if waiting:
                project_waiting()
        return [results[index] for index in range(len(requests))]

    def _leaf_log_probs(self, pack: PrefixTreePack) -> Any:
        return self._log_probs(self._leaf_states(pack))

    def _log_probs(self, states: Any) -> Any:
        """Log-probabilities over the vocabulary from last hidden states ``[rows, hidden]``."""
        import torch

        logits = self.model.lm_head(states)
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _leaf_states(self, pack: PrefixTreePack) -> Any:
        """The last hidden state of each member of a pack, ``[members, hidden]``."""
        import torch

        if self.tree_attention:
            # the blocks carry the tree; a 4D mask passes through transformers untouched, so a
            # one-element placeholder keeps it from building a dense causal mask of its own
            mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=self.device)
            blocks = tree_blocks(
                pack.positions,
                rows=BLOCK_ROWS.get(self.dtype, DEFAULT_BLOCK_ROWS),
                device=self.device,
                dtype=self.activation_dtype,
            )
            extra: dict[str, Any] = {"tree_blocks": blocks}
            if self.fused_layers and keeps_leaf_rows(self.model):
                # the last layer's output projection and MLP then run on these rows alone
                extra["leaf_rows"] = torch.tensor(pack.leaves, device=self.device)
        else:
            mask, extra = pack.attention_mask().to(self.device), {}
        hidden = self.model.model(
            input_ids=torch.tensor([pack.token_ids], device=self.device),
            position_ids=torch.tensor([pack.positions], device=self.device),
            attention_mask=mask,
            use_cache=False,
            **extra,
        ).last_hidden_state
        if "leaf_rows" in extra:
            return hidden[0]
        # only where a prompt ends: the other nodes need no logits
        return hidden[0, pack.leaves]

    def _score_batched(
        self, requests: Sequence[ScoringRequest], encoded: list[list[int]]
    ) -> list[ScoredPrompt]:
        import torch

        order = sorted(range(len(requests)), key=lambda index: len(encoded[index]))
        results: dict[int, ScoredPrompt] = {}
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                log_probs = self._last_token_log_probs([encoded[index] for index in batch])
                for row, index in enumerate(batch):
                    results[index] = self._score_one(requests[index], log_probs[row])
        return [results[index] for index in range(len(requests))]

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


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: allocations up to this size come from the heap: glibc's ceiling on 64-bit Linux, above the
#: largest activation of a bfloat16 pack (4,096 x 3,072 x 2 bytes = 25 MB)
_HEAP_ALLOCATIONS_UP_TO = 32 * 1024 * 1024
#: freed memory the heap keeps for reuse before returning any to the system
_HEAP_KEEPS = 256 * 1024 * 1024


def reuse_freed_activations() -> bool:
    """Have glibc keep freed activation buffers for the next layer instead of unmapping them.

    By default glibc serves each allocation above 128 kB (every activation of a pack) with a fresh
    mapping, returns it to the system when freed, and the next layer's tensor of the same size is
    page-faulted in and zeroed again. A 4,096-row bfloat16 MLP here took 20 ms that way and 8.5 ms
    with the heap kept; whole packs score 2-8% faster, at the same peak memory. Returns whether the
    setting took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library, such as musl
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _HEAP_ALLOCATIONS_UP_TO)
        and mallopt(_M_TRIM_THRESHOLD, _HEAP_KEEPS)
    )


def _copy_out_of_the_file(model: Any) -> None:
    """Give the parameters left in float32 memory of their own, so the weights file is unmapped.

    transformers maps the safetensors file; its float32 pages stay resident while any tensor still
    points into it (here the embeddings and norms), 0.3 GB more than the model needs.
    """
    for parameter in model.parameters():
        parameter.data = parameter.data.clone()


def _checked_compile(value: Any, dtype: str, tail_channels: int | None) -> bool:
    if not isinstance(value, bool):
        raise CultureProbeError(f"--option compile expects true or false, got {value!r}")
    # the option's own conflict first: it does not depend on the CPU
    if value and dtype == "mixed" and tail_channels is not None:
        raise CultureProbeError(
            "--option compile=true with --dtype mixed splits every channel: leave tail_channels out"
        )
    if value and dtype == "mixed" and split_kernel() is None:
        raise CultureProbeError(
            f"--option compile=true with --dtype mixed needs the split kernel, and "
            f"{kernel_unavailable_reason()}; MKL's products, which mixed uses instead, cannot be "
            f"compiled. Leave the option out, or use --dtype bfloat16 or float32"
        )
    return value


def _checked_tail_channels(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise CultureProbeError(
        f"--option tail_channels expects a whole number of input channels, 0 or more (0: one "
        f"bfloat16 product; the input width or more: every channel split), got {value!r}"
    )


def default_threads() -> int:
    """All cores: scoring is compute-bound and the runner does nothing else meanwhile."""
    return os.cpu_count() or 1
