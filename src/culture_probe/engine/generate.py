"""Batched text generation: many prompts decoded together, each stopping at its own end.

Written and open answers are generations of up to ``max_new_tokens`` tokens each, and on a CPU one
decoding step costs about as much for one prompt as for thirty: the step reads every weight once,
whatever the number of rows it multiplies. :func:`generate` therefore decodes prompts in batches:

- **Order.** Prompts are sorted by their token ids, so that a batch holds prompts that share a
  prefix (chat header, persona, question) and differ little in length.
- **Shared prefix once.** The tokens every prompt of a batch starts with go through the model once,
  as one sequence; their keys and values are then copied to every row of the batch.
- **Left padding.** The rest of each prompt is padded on the left, so that every row's last token
  sits in the last column. Padding is masked out of every row's attention (a padding position
  sees only itself, so no attention row is empty), and position ids count only real tokens: a
  row sees the keys, values and positions it would see alone.
- **Key/value cache.** Each step feeds one token a row; the keys and values of earlier tokens are
  kept in a buffer reserved for the whole batch (:class:`ReservedLayer`), written in place rather
  than copied onto a longer tensor each step.
- **Own end.** A row stops at a stop token (EOS, the chat template's end of turn) or at
  ``max_new_tokens``; finished rows leave the batch, so a step costs less as rows finish.
- **Own generator.** Sampling draws each row from a ``torch.Generator`` seeded with its prompt's
  seed: a sample depends on its prompt and seed, not on which prompts shared its batch, up to the
  float rounding that a different batch shape brings. Temperature 0 is greedy.

This module imports nothing from the backends: :func:`culture_probe.backends.generation.hf_generate`
renders and tokenizes the prompts, imports this module when it first generates (it needs
transformers at import), and reads the answers back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

#: end-of-turn tokens of common chat templates, used where rendering the template finds none
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class Decoding:
    """How to decode: greedy at ``temperature`` 0, else sampled (nucleus ``top_p`` below 1);
    ``batch_rows`` prompts at a time."""

    max_new_tokens: int
    batch_rows: int
    temperature: float = 0.0
    top_p: float = 1.0


def generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    decoding: Decoding,
    stop_tokens: frozenset[int],
    device: str = "cpu",
) -> list[list[int]]:
    """The tokens written after each prompt, the stop token left out, in the prompts' order.

    Args:
        model: a transformers causal language model.
        prompts: token ids of each prompt, chat template applied; none empty.
        seeds: one seed a prompt, for its own sampling generator (unused when greedy).
        decoding: length, temperature, nucleus and rows a batch.
        stop_tokens: token ids that end an answer (see :func:`stop_token_ids`).
        device: where the model runs.
    """
    import torch

    if any(len(prompt) == 0 for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    written: list[list[int]] = [[] for _ in prompts]
    with torch.inference_mode():
        for batch in _batches(prompts, decoding.batch_rows):
            rows = _Batch(model, [prompts[i] for i in batch], [seeds[i] for i in batch], device)
            for row, tokens in enumerate(rows.decode(decoding, stop_tokens)):
                written[batch[row]] = tokens
    return written


def _batches(prompts: Sequence[Sequence[int]], rows: int) -> Iterator[list[int]]:
    """Prompt indices in token order, ``rows`` at a time: neighbours share prefixes."""
    order = sorted(range(len(prompts)), key=lambda index: list(prompts[index]))
    for start in range(0, len(order), max(rows, 1)):
        yield order[start : start + rows]


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, keeping at least one token of each prompt after them.

    The last token of each prompt must go through the batched pass, which reads the first
    next-token distribution there.

    Example:
        >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 5]])
        2
        >>> shared_prefix_length([[1, 2], [1, 2, 3]])  # [1, 2] keeps its last token
        1
    """
    shortest = min(len(prompt) for prompt in prompts)
    length = 0
    first = prompts[0]
    while length < shortest - 1 and all(prompt[length] == first[length] for prompt in prompts):
        length += 1
    return length


class ReservedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's key/value cache in a buffer reserved for the whole generation.

    transformers' ``DynamicLayer`` appends a step by concatenation, which copies every cached key
    and value each step; here the buffer holds ``capacity`` positions from the first update on and
    a step writes its own position only. ``keys`` and ``values`` are views of the filled part.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capacity = capacity
        self.length = 0
        self._key_buffer: Any = None
        self._value_buffer: Any = None

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        import torch

        rows, heads, _, width = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        shape = (rows, heads, self.capacity, width)
        self._key_buffer = torch.empty(shape, dtype=self.dtype, device=self.device)
        self._value_buffer = torch.empty(
            (*shape[:3], value_states.shape[-1]), dtype=self.dtype, device=self.device
        )
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self._key_buffer[:, :, self.length : end] = key_states
        self._value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._show_filled()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: Any) -> None:
        if self.is_initialized:
            self._key_buffer = self._key_buffer[indices]
            self._value_buffer = self._value_buffer[indices]
            self._show_filled()

    def _show_filled(self) -> None:
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]


def _batch_cache(model: Any, capacity: int) -> Any:
    """An empty cache for a batch: reserved buffers where every layer attends to all positions."""
    config = model.config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None)
    full = all(kind == "full_attention" for kind in layer_types) if layer_types else True
    if not full or (layer_types is None and getattr(config, "sliding_window", None)):
        return DynamicCache(config=model.config)  # sliding windows keep transformers' own layers
    return Cache(layers=[ReservedLayer(capacity) for _ in range(config.num_hidden_layers)])


class _Batch:
    """Prompts decoded together: the state of one batch from its prefix to its last row's end."""

    def __init__(
        self, model: Any, prompts: list[Sequence[int]], seeds: list[int], device: str
    ) -> None:
        self.model = model
        self.prompts = prompts
        self.seeds = seeds
        self.device = device
        #: the activations' dtype, which an additive attention mask must share
        self.dtype = model.get_input_embeddings().weight.dtype

    def decode(self, decoding: Decoding, stop_tokens: frozenset[int]) -> list[list[int]]:
        import torch

        shared = shared_prefix_length(self.prompts)
        width = max(len(prompt) for prompt in self.prompts) - shared
        cache = _batch_cache(self.model, shared + width + decoding.max_new_tokens)
        self._prefill_shared(cache, shared)
        logits, visible, positions = self._prefill_rest(cache, shared, width)
        generators = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        written: list[list[int]] = [[] for _ in self.prompts]
        active = list(range(len(self.prompts)))  # prompt rows still in the batch, in cache order
        for _ in range(decoding.max_new_tokens):
            tokens = next_tokens(logits, generators, decoding).tolist()
            keep = []
            for slot, (row, token) in enumerate(zip(active, tokens, strict=True)):
                if token in stop_tokens:
                    continue
                written[row].append(token)
                if len(written[row]) < decoding.max_new_tokens:
                    keep.append(slot)
            if not keep:
                break
            if len(keep) < len(active):
                cache.batch_select_indices(torch.tensor(keep, device=self.device))
                visible, positions = visible[keep], positions[keep]
                generators = [generators[slot] for slot in keep]
                active = [active[slot] for slot in keep]
                tokens = [tokens[slot] for slot in keep]
            visible = torch.cat([visible, visible.new_ones((len(keep), 1))], dim=1)
            positions = positions + 1
            logits = self._step(cache, torch.tensor(tokens)[:, None], positions[:, None], visible)
        return written

    def _prefill_shared(self, cache: Any, shared: int) -> None:
        """The shared prefix through the model once, its keys and values copied to every row."""
        import torch

        if not shared:
            return
        prefix: Any = DynamicCache(config=self.model.config)
        self.model(
            input_ids=torch.tensor([list(self.prompts[0][:shared])], device=self.device),
            position_ids=torch.arange(shared, device=self.device)[None],
            past_key_values=prefix,
            use_cache=True,
            logits_to_keep=1,
        )
        rows = len(self.prompts)
        for index, layer in enumerate(prefix.layers):
            keys, values = layer.keys, layer.values
            cache.update(
                keys.expand(rows, *keys.shape[1:]), values.expand(rows, *values.shape[1:]), index
            )

    def _prefill_rest(self, cache: Any, shared: int, width: int) -> tuple[Any, Any, Any]:
        """Each prompt's tokens after the prefix, left-padded to ``width``, in one pass.

        Returns the next-token logits of each row, which cache positions each row sees, and
        each row's last position id.
        """
        import torch

        rows = len(self.prompts)
        input_ids = torch.zeros((rows, width), dtype=torch.long)
        real = torch.zeros((rows, width), dtype=torch.bool)
        for row, prompt in enumerate(self.prompts):
            rest = list(prompt[shared:])
            input_ids[row, width - len(rest) :] = torch.tensor(rest)
            real[row, width - len(rest) :] = True
        # real tokens count on from the prefix; padding gets any position, as nothing sees it
        positions = (shared + real.long().cumsum(dim=1) - 1).clamp(min=0)
        visible = torch.cat([torch.ones((rows, shared), dtype=torch.bool), real], dim=1)
        causal = torch.ones((width, shared + width), dtype=torch.bool).tril(diagonal=shared)
        sees = causal[None] & visible[:, None, :]
        # a padding position sees only itself: its attention row is never empty (which would
        # give NaN, and NaN times a zero weight still reaches the real rows in the next layer)
        own = torch.eye(width, dtype=torch.bool)[None] & ~real[:, :, None]
        sees[:, :, shared:] |= own
        logits = self._forward(cache, input_ids, positions, sees)
        return logits, visible, positions[:, -1]

    def _step(self, cache: Any, input_ids: Any, positions: Any, visible: Any) -> Any:
        """One token a row: each sees the cached positions ``visible`` marks, and itself."""
        return self._forward(cache, input_ids, positions, visible[:, None, :])

    def _forward(self, cache: Any, input_ids: Any, positions: Any, sees: Any) -> Any:
        """Next-token logits at each row's last column; ``sees`` is ``[rows, queries, keys]``."""
        import torch

        # an additive 4D mask reaches the attention untouched (transformers builds none of its own)
        mask = torch.zeros(sees.shape, dtype=self.dtype).masked_fill_(~sees, float("-inf"))
        output = self.model(
            input_ids=input_ids.to(self.device),
            position_ids=positions.to(self.device),
            attention_mask=mask[:, None].to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return output.logits[:, -1].float().cpu()


def next_tokens(logits: Any, generators: Sequence[Any], decoding: Decoding) -> Any:
    """One token a row: the most likely at temperature 0, else drawn with the row's generator.

    Example:
        >>> import torch
        >>> next_tokens(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), [], Decoding(4, 2)).tolist()
        [1, 0]
    """
    import torch

    if decoding.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / decoding.temperature, dim=-1)
    if decoding.top_p < 1:
        probs = nucleus(probs, decoding.top_p)
    draws = [
        torch.multinomial(row[None], 1, generator=generator)[0, 0]
        for row, generator in zip(probs, generators, strict=True)
    ]
    return torch.stack(draws)


def nucleus(probs: Any, top_p: float) -> Any:
    """Probabilities kept to the smallest set of most likely tokens whose mass reaches ``top_p``
    (the most likely token always kept), as transformers' top-p warper keeps them; not renormalised
    (``torch.multinomial`` takes weights).

    Example:
        >>> import torch
        >>> nucleus(torch.tensor([[0.5, 0.3, 0.2]]), 0.7).tolist()
        [[0.5, 0.30000001192092896, 0.0]]
    """
    ordered, order = probs.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered  # mass of the more likely tokens
    dropped = before >= top_p
    dropped[..., 0] = False
    return probs.scatter(-1, order, ordered.masked_fill(dropped, 0.0))


def stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Tokens that end an answer: the tokenizer's and the model's EOS, and the end of turn.

    The end of turn is the special token the chat template writes right after an assistant
    message (``<|im_end|>`` in ChatML); where rendering finds none, the common names
    (:data:`_END_OF_TURN`) that the vocabulary holds as special tokens stand in.
    """
    found: set[int] = set()
    for source in (tokenizer, getattr(model, "generation_config", None)):
        eos = getattr(source, "eos_token_id", None)
        found.update(eos if isinstance(eos, list) else [] if eos is None else [eos])
    end_of_turn = _template_end_of_turn(tokenizer)
    if end_of_turn is not None:
        found.add(end_of_turn)
    else:
        special = set(getattr(tokenizer, "all_special_tokens", ()))
        found.update(
            int(tokenizer.convert_tokens_to_ids(name)) for name in _END_OF_TURN if name in special
        )
    return frozenset(found)


def _template_end_of_turn(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant's message, if any."""
    marker = "Kx7q"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}],
            tokenize=False,
        )
    except Exception:  # a tokenizer without a template, or one that refuses this conversation
        return None
    after = str(text).split(marker, 1)[-1] if marker in str(text) else ""
    ids = tokenizer.encode(after.strip(), add_special_tokens=False) if after.strip() else []
    special = set(getattr(tokenizer, "all_special_ids", ()))
    return int(ids[0]) if ids and ids[0] in special else None
