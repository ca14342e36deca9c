"""The engine's one entry point: :func:`prepare` turns a loaded transformers model into an Engine.

What it sets up, by dtype (each piece lives in its own module of this package):

- every dtype: attention over prefix-tree packs gathered block by block
  (:mod:`~culture_probe.engine.tree_attention`) where the architecture takes transformers'
  attention interface;
- ``mixed``: split-bfloat16 products (:mod:`~culture_probe.engine.mixed`) on the split kernel
  where the CPU runs it (:mod:`~culture_probe.engine.split_kernel`), else MKL; tail channels
  calibrated on a fixed conversation; decoder layers fused around the kernel
  (:mod:`~culture_probe.engine.fused`);
- ``compile=True``: each decoder layer compiled with ``torch.compile``, warmed up at load.

Scoring then goes through :meth:`Engine.log_probs_at_ends`: prompts packed as prefix trees
(:mod:`~culture_probe.engine.packing`), log-probabilities at each prompt's last token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from culture_probe.engine.fused import keeps_leaf_rows, use_fused_layers
from culture_probe.engine.mixed import (
    CALIBRATION_MESSAGES,
    DEFAULT_TAIL_CHANNELS,
    calibrate_tail_channels,
    use_compilable_products,
    use_mixed_precision,
)
from culture_probe.engine.packing import (
    BLOCK_ROWS,
    LEAVES_PER_PROJECTION,
    PrefixTreePack,
    default_pack_tokens,
    pack_prefix_trees,
)
from culture_probe.engine.split_kernel import kernel_unavailable_reason, split_kernel
from culture_probe.engine.tree_attention import (
    DEFAULT_BLOCK_ROWS,
    tree_blocks,
    use_tree_attention,
)
from culture_probe.errors import CultureProbeError

DTYPES = ("auto", "mixed", "bfloat16", "float16", "float32")


def pick_dtype(requested: str, device: str) -> str:
    """What ``auto`` means on a device; other choices are checked and kept.

    On a CPU where the split kernel runs (:mod:`culture_probe.engine.split_kernel`: AMX tiles,
    or AVX-512's VNNI dot products) that is ``mixed`` (bfloat16 or int16 matrix products with
    float32 sums, float32 elsewhere: see :mod:`culture_probe.engine.mixed`), which is faster
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


def kernel_build(dtype: str, tail_channels: int | None = DEFAULT_TAIL_CHANNELS) -> str:
    """What computes the matrix products: ``amx``, ``avx512``, ``mkl`` (mixed's fallback) or
    ``none`` (PyTorch's own products, every dtype but mixed).

    Tail channels run on MKL even where the kernel runs (the kernel splits every channel).
    """
    if dtype != "mixed":
        return "none"
    kernel = split_kernel()
    return kernel.build if kernel is not None and tail_channels is None else "mkl"


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs a model; :meth:`checked` validates them before any model loads.

    Attributes:
        dtype: a resolved dtype (:func:`pick_dtype`): mixed, bfloat16, float16 or float32.
        device: ``cpu`` or ``cuda[:n]``.
        pack_tokens: tree nodes per pack; ``None``: the fastest measured for the dtype.
        tail_channels: remainder channels per product under mixed; ``None``: every channel.
        compile: compile each decoder layer with ``torch.compile`` at load.
        fused_layers: under mixed, run whole decoder layers around the split kernel.
    """

    dtype: str
    device: str = "cpu"
    pack_tokens: int | None = None
    tail_channels: int | None = DEFAULT_TAIL_CHANNELS
    compile: bool = False
    fused_layers: bool = True

    def checked(self) -> EngineOptions:
        """These options with defaults resolved, or an error naming the option that is wrong."""
        if not isinstance(self.fused_layers, bool):
            raise CultureProbeError(
                f"--option fused_layers expects true or false, got {self.fused_layers!r}"
            )
        tail = _checked_tail_channels(self.tail_channels) if self.dtype == "mixed" else None
        _checked_compile(self.compile, self.dtype, tail)
        return replace(
            self,
            tail_channels=tail,
            pack_tokens=self.pack_tokens or default_pack_tokens(self.dtype),
        )

    def load_dtype(self) -> Any:
        """The torch dtype to load the weights in: float32 under mixed, around its products."""
        import torch

        return getattr(torch, "float32" if self.dtype == "mixed" else self.dtype)


def prepare(model: Any, tokenizer: Any, options: EngineOptions) -> Engine:
    """Set the engine up on a model loaded on the host in ``options.load_dtype()``.

    Moves the model to ``options.device``; ``tokenizer`` renders the fixed calibration
    conversation (tail channels, compile warm-up).
    """
    options = options.checked()
    if options.dtype == "mixed":
        # weights packed for the split kernel at once, unless tail channels are calibrated first
        use_mixed_precision(model, pack=options.tail_channels is None)
        _copy_out_of_the_file(model)
        if options.tail_channels is not None:
            calibrate_tail_channels(model, calibration_tokens(tokenizer), options.tail_channels)
    model = model.to(options.device)
    model.eval()
    engine = Engine(model, options, tree_attention=_try_tree_attention(model))
    engine.fused_layers = engine.fuse_layers()
    if options.compile:
        engine.compile_decoder_layers(calibration_tokens(tokenizer))
    return engine


class Engine:
    """A model set up for packed scoring; build it with :func:`prepare`."""

    def __init__(self, model: Any, options: EngineOptions, tree_attention: bool) -> None:
        self.model = model
        self.options = options
        #: whether packs attend block by block (else through a dense mask)
        self.tree_attention = tree_attention
        #: decoder layers fused around the split kernel
        self.fused_layers = 0
        #: what computes the products (see :func:`kernel_build`)
        self.kernel = kernel_build(options.dtype, options.tail_channels)

    @property
    def activation_dtype(self) -> Any:
        return self.options.load_dtype()

    def describe(self) -> dict[str, Any]:
        """The engine's settings for the manifest; ``kernel``, ``tail_channels``, ``compile``
        and ``fused_layers`` change the scores, so they go into the run key too."""
        mixed = self.options.dtype == "mixed"
        return {
            "pack_tokens": self.options.pack_tokens,
            "kernel": self.kernel,
            **({"tail_channels": self.options.tail_channels} if mixed else {}),
            **({"compile": True} if self.options.compile else {}),
            **({"fused_layers": self.fused_layers} if mixed else {}),
        }

    def fuse_layers(self) -> int:
        """Fuse the decoder layers around the split kernel where they can be; how many were."""
        options = self.options
        # compiled layers fuse their own elementwise work; tail channels and MKL have no kernel
        if (
            not options.fused_layers
            or options.compile
            or options.dtype != "mixed"
            or not self.tree_attention
        ):
            return 0
        return use_fused_layers(self.model)

    def compile_decoder_layers(self, tokens: Sequence[int]) -> None:
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
                "--option compile=true compiles the decoder layers at model.model.layers, which "
                f"{type(self.model).__name__} does not have; leave the option out"
            )
        if self.options.dtype == "mixed":
            use_compilable_products(self.model)
        for layer in layers:
            layer.compile(dynamic=True)
        try:
            # sizes that happen to be equal in a warm-up pack (its width and its rows, say) would
            # otherwise be compiled as one and recompiled when a real pack tells them apart
            # (``patch`` is made at run time by torch's config module, so the stubs lack it)
            no_duck_shapes = fx_config.patch(use_duck_shape=False)  # type: ignore[attr-defined]
            with torch.inference_mode(), no_duck_shapes:
                rows = BLOCK_ROWS.get(self.options.dtype, DEFAULT_BLOCK_ROWS)
                for nodes in (rows * 2 - 8, rows * 3 - 8, 8):
                    [pack] = pack_prefix_trees([(list(tokens) * 4)[:nodes]], nodes)
                    self.log_probs(self.leaf_states(pack))
        except Exception as error:  # torch.compile raises many kinds; all mean the same here
            summary = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise CultureProbeError(
                f"--option compile=true: torch.compile could not compile "
                f"{type(self.model).__name__} ({type(error).__name__}: {summary}). On a CPU it "
                f"needs a C++ compiler (g++); leave the option out to run uncompiled"
            ) from error

    def log_probs_at_ends(
        self, sequences: Sequence[Sequence[int]]
    ) -> Iterator[tuple[list[int], Any]]:
        """Log-probabilities over the vocabulary after each sequence's last token.

        Yields ``(indices, log_probs)``: positions in ``sequences`` and a ``[len(indices), vocab]``
        float32 tensor on the host, a few hundred prompts at a time, each index once.
        """
        import torch

        waiting: list[tuple[list[int], Any]] = []  # each pack's members and their last states
        with torch.inference_mode():
            for pack in pack_prefix_trees(sequences, self.options.pack_tokens or 1):
                waiting.append((pack.members, self.leaf_states(pack)))
                if sum(len(members) for members, _ in waiting) >= LEAVES_PER_PROJECTION:
                    yield self._project(waiting)
                    waiting = []
            if waiting:
                yield self._project(waiting)

    def _project(self, waiting: list[tuple[list[int], Any]]) -> tuple[list[int], Any]:
        import torch

        members = [index for pack_members, _ in waiting for index in pack_members]
        return members, self.log_probs(torch.cat([states for _, states in waiting]))

    def log_probs(self, states: Any) -> Any:
        """Log-probabilities over the vocabulary from last hidden states ``[rows, hidden]``."""
        import torch

        logits = self.model.lm_head(states)
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def leaf_states(self, pack: PrefixTreePack) -> Any:
        """The last hidden state of each member of a pack, ``[members, hidden]``."""
        import torch

        device = self.options.device
        if self.tree_attention:
            # the blocks carry the tree; a 4D mask passes through transformers untouched, so a
            # one-element placeholder keeps it from building a dense causal mask of its own
            mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=device)
            blocks = tree_blocks(
                pack.positions,
                rows=BLOCK_ROWS.get(self.options.dtype, DEFAULT_BLOCK_ROWS),
                device=device,
                dtype=self.activation_dtype,
            )
            extra: dict[str, Any] = {"tree_blocks": blocks}
            if self.fused_layers and keeps_leaf_rows(self.model):
                # the last layer's output projection and MLP then run on these rows alone
                extra["leaf_rows"] = torch.tensor(pack.leaves, device=device)
        else:
            mask, extra = pack.attention_mask().to(device), {}
        hidden = self.model.model(
            input_ids=torch.tensor([pack.token_ids], device=device),
            position_ids=torch.tensor([pack.positions], device=device),
            attention_mask=mask,
            use_cache=False,
            **extra,
        ).last_hidden_state
        if "leaf_rows" in extra:
            return hidden[0]
        # only where a prompt ends: the other nodes need no logits
        return hidden[0, pack.leaves]


def calibration_tokens(tokenizer: Any) -> list[int]:
    """The fixed calibration conversation (:data:`CALIBRATION_MESSAGES`) as token ids."""
    text = tokenizer.apply_chat_template(
        list(CALIBRATION_MESSAGES), tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer.encode(str(text), add_special_tokens=False))


def _try_tree_attention(model: Any) -> bool:
    """Sparse attention over packs where the architecture takes transformers' interface."""
    try:
        use_tree_attention(model)
    except (ValueError, NotImplementedError):
        return False  # packs then go through the dense mask
    return True


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
