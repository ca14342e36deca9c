"""Batched text generation: many prompts decoded together, each stopping at its own end.

Written and open answers are generations of up to ``max_new_tokens`` tokens each, and on a CPU one
decoding step costs about as much for a few prompts as for thirty: the step reads every weight
once, whatever the number of rows it multiplies. :func:`generate` therefore decodes ``batch_rows``
prompts together, and with ``Decoding.refill`` keeps that batch full until the prompts run out
(continuous batching):

- **Order.** Prompts are taken in the order of their token ids, so that prompts admitted one after
  another share a prefix (chat header, persona, question) and differ little in length.
- **Refill** (``Decoding.refill``, off by default). When a row ends, the next waiting prompt takes
  its place in the running batch. Answers are short and uneven (most a few tokens, a few the whole
  ``max_new_tokens``); a batch that only shrank would spend most of its steps on its few long
  rows, each step costing nearly what a full one does. Without refill a batch runs until its last
  row ends, and the next batch starts then.
- **Prefixes computed once.** Prompts admitted together (a batch's first rows, or the newcomers
  of a refill) go through the model in one pass: the tokens they share with the prompt admitted
  before them are copied from that prompt's keys and values, the further tokens they all share go
  through once as one sequence, and the rest of each prompt is padded on the left. Padding is
  masked out of every row's attention (a padding position sees only itself, so no attention row
  is empty), and position ids count only real tokens: a row sees the keys, values and positions
  it would see alone.
- **Key/value cache.** Each step feeds one token a row, all written in one new column; keys and
  values are kept in a buffer reserved for the batch (:class:`ReservedLayer`), written in place
  rather than copied onto a longer tensor each step. A newcomer's prompt is copied into its row so
  that it ends at the current column, and each row's attention mask marks which columns are its
  own. When the columns run out, every row's own columns move to the end of a shorter layout
  (:meth:`ReservedLayer.rearrange`).
- **Own end.** A row stops at a stop token (EOS, the chat template's end of turn) or at
  ``max_new_tokens``; a finished row that no waiting prompt replaces leaves the batch, so a step
  costs less as the last rows finish.
- **Own generator.** Sampling draws each row from a ``torch.Generator`` seeded with its prompt's
  seed: a sample depends on its prompt and seed, not on which prompts shared its batch, up to the
  float rounding that a different batch shape brings. Temperature 0 is greedy.

Models with sliding-window layers keep transformers' own cache: their batches are not refilled
and copy no prefix from an earlier batch.

This module imports nothing from the backends: :func:`culture_probe.backends.generation.hf_generate`
renders and tokenizes the prompts, imports this module when it first generates (it needs
transformers at import), and reads the answers back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

#: end-of-turn tokens of common chat templates, used where rendering the template finds none
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")

#: prompt tokens that computing a group's shared prefix once must save to be worth its own pass:
#: a pass reads every weight once, which on this project's CPU (float32, 135M parameters) cost
#: what 30-70 tokens of a large pass cost, measured in one thread
_MIN_PREFIX_SAVING = 32


@dataclass(frozen=True)
class Decoding:
    """How to decode: greedy at ``temperature`` 0, else sampled (nucleus ``top_p`` below 1);
    ``batch_rows`` prompts at a time, a finished row's place taken by a waiting prompt where
    ``refill``."""

    max_new_tokens: int
    batch_rows: int
    temperature: float = 0.0
    top_p: float = 1.0
    #: off by default: on 2 CPU threads the small prefill passes of the newcomers cost more than
    #: the steps refilling saves (benchmarks/RESULTS.md, "Generation")
    refill: bool = False


@dataclass
class GenerationCounts:
    """What one :func:`generate` call did: its batches, refills, steps and prompt tokens."""

    #: batches started empty (the first, and each one after a batch ran out without refill)
    batches: int = 0
    #: prompts admitted into a running batch, in the place of a finished row
    refilled: int = 0
    #: decoding steps, each one token for every row of the batch
    steps: int = 0
    #: prompt positions that went through the model, padding included
    prefill_tokens: int = 0
    #: prompt positions whose keys and values were copied from the prompt admitted before
    copied_tokens: int = 0
    #: times every row's columns moved to a new layout (:meth:`ReservedLayer.rearrange`)
    rearranged: int = 0


def generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    decoding: Decoding,
    stop_tokens: frozenset[int],
    device: str = "cpu",
    counts: GenerationCounts | None = None,
) -> list[list[int]]:
    """The tokens written after each prompt, the stop token left out, in the prompts' order.

    Args:
        model: a transformers causal language model.
        prompts: token ids of each prompt, chat template applied; none empty.
        seeds: one seed a prompt, for its own sampling generator (unused when greedy).
        decoding: length, temperature, nucleus, rows a batch and refill.
        stop_tokens: token ids that end an answer (see :func:`stop_token_ids`).
        device: where the model runs.
        counts: filled in with what the call did, where given.
    """
    import torch

    if any(len(prompt) == 0 for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    decoder = _Decoder(model, prompts, seeds, decoding, stop_tokens, device, counts)
    with torch.inference_mode():
        decoder.run()
    return decoder.written


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


def common_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many tokens two sequences start with in common.

    Example:
        >>> common_length([1, 2, 3], [1, 2, 4, 5])
        2
    """
    length = 0
    for one, other in zip(first, second, strict=False):
        if one != other:
            break
        length += 1
    return length


class ReservedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's key/value cache in a buffer reserved for the whole batch.

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

    def write_row(self, row: int, start: int, keys: Any, values: Any) -> None:
        """One row's keys and values (``[heads, positions, width]``) from column ``start`` on."""
        end = start + keys.shape[-2]
        self._key_buffer[row, :, start:end] = keys
        self._value_buffer[row, :, start:end] = values

    def rearrange(self, columns: Any) -> None:
        """Row ``r``'s column ``j`` becomes its old column ``columns[r, j]``; the rest is dropped."""
        import torch

        rows, width = columns.shape
        index = columns[:, None, :, None]
        for name in ("_key_buffer", "_value_buffer"):
            buffer = getattr(self, name)
            moved = torch.empty_like(buffer)
            shape = (rows, buffer.shape[1], width, buffer.shape[-1])
            moved[:, :, :width] = buffer.gather(2, index.expand(shape))
            setattr(self, name, moved)
        self.length = width
        self._show_filled()

    def _show_filled(self) -> None:
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]


def _reserves(model: Any) -> bool:
    """Whether every layer attends to all positions, so that a reserved buffer can hold them."""
    config = model.config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return not getattr(config, "sliding_window", None)


def _batch_cache(model: Any, capacity: int) -> Any:
    """An empty cache for a batch: reserved buffers where every layer attends to all positions."""
    if not _reserves(model):
        return DynamicCache(config=model.config)  # sliding windows keep transformers' own layers
    config = model.config.get_text_config(decoder=True)
    return Cache(layers=[ReservedLayer(capacity) for _ in range(config.num_hidden_layers)])


@dataclass
class _Admitted:
    """A prompt's keys and values, every layer's ``[1, heads, tokens, width]``, kept so that the
    prompt admitted next can copy the prefix they share."""

    tokens: Sequence[int]
    keys: list[Any]
    values: list[Any]


@dataclass
class _Prefilled:
    """Prompts that went through the model together: where each one's tokens sit in the cache of
    that pass, and the next-token logits at each one's end."""

    logits: Any
    columns: list[Any]
    width: int


@dataclass
class _Running:
    """The running batch: per row, its prompt, generator, the token it feeds next, the cache
    columns that are its own, and the position id of its last fed token."""

    cache: Any
    rows: list[int]
    generators: list[Any]
    pending: list[int]
    own: Any
    positions: Any
    #: columns the cache reserves for each row
    capacity: int

    @property
    def length(self) -> int:
        return int(self.own.shape[1])


class _Decoder:
    """Every prompt decoded: the queue of waiting prompts, the running batch and the answers."""

    def __init__(
        self,
        model: Any,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int],
        decoding: Decoding,
        stop_tokens: frozenset[int],
        device: str,
        counts: GenerationCounts | None,
    ) -> None:
        self.model = model
        self.prompts = prompts
        self.seeds = seeds
        self.decoding = decoding
        self.stop_tokens = stop_tokens
        self.device = device
        self.counts = counts if counts is not None else GenerationCounts()
        #: the activations' dtype, which an additive attention mask must share
        self.dtype = model.get_input_embeddings().weight.dtype
        self.reserves = _reserves(model)
        self.refill = decoding.refill and self.reserves
        self.longest = max((len(prompt) for prompt in prompts), default=0)
        self.waiting = deque(sorted(range(len(prompts)), key=lambda index: list(prompts[index])))
        self.written: list[list[int]] = [[] for _ in prompts]
        self.previous: _Admitted | None = None
        self.batch: _Running | None = None

    def run(self) -> None:
        while self.waiting or self.batch is not None:
            if self.batch is None:
                self._start()
            else:
                self._step()

    def _take(self, count: int) -> list[int]:
        return [self.waiting.popleft() for _ in range(min(count, len(self.waiting)))]

    def _record(self, row: int, token: int) -> bool:
        """Append a drawn token to its row's answer; whether the row goes on."""
        if token in self.stop_tokens:
            return False
        self.written[row].append(token)
        return len(self.written[row]) < self.decoding.max_new_tokens

    def _start(self) -> None:
        """A batch from empty: its first prompts prefilled straight into its own cache."""
        import torch

        group = self._take(self.decoding.batch_rows)
        # room for every prompt's length, and (with refill) for steps between rearrangements
        room = self.decoding.max_new_tokens * (2 if self.refill else 1)
        capacity = self.longest + room
        cache = _batch_cache(self.model, capacity)
        prefilled = self._prefill(group, cache)
        width = prefilled.width
        own = torch.zeros((len(group), width), dtype=torch.bool)
        for row, columns in enumerate(prefilled.columns):
            own[row, columns] = True
        positions = torch.tensor([len(self.prompts[row]) - 1 for row in group])
        generators = [torch.Generator().manual_seed(self.seeds[row]) for row in group]
        drawn = next_tokens(prefilled.logits, generators, self.decoding).tolist()
        self.batch = _Running(cache, group, generators, drawn, own, positions, capacity)
        self.counts.batches += 1
        ended = [
            slot
            for slot, (row, token) in enumerate(zip(group, drawn, strict=True))
            if not self._record(row, token)
        ]
        self._settle(ended)

    def _step(self) -> None:
        """One token for every row; finished rows refilled or dropped."""
        import torch

        batch = self.batch
        assert batch is not None
        if batch.length >= batch.capacity:
            self._rearrange(int(batch.own.sum(dim=1).max()))
        batch.own = torch.cat([batch.own, batch.own.new_ones((len(batch.rows), 1))], dim=1)
        batch.positions = batch.positions + 1
        tokens = torch.tensor(batch.pending)[:, None]
        logits = self._forward(batch.cache, tokens, batch.positions[:, None], batch.own[:, None])
        self.counts.steps += 1
        drawn = next_tokens(logits, batch.generators, self.decoding).tolist()
        batch.pending = drawn
        ended = [
            slot
            for slot, (row, token) in enumerate(zip(batch.rows, drawn, strict=True))
            if not self._record(row, token)
        ]
        self._settle(ended)

    def _settle(self, ended: list[int]) -> None:
        """Finished rows' places: taken by waiting prompts (with refill), or dropped."""
        import torch

        batch = self.batch
        assert batch is not None
        if self.refill:
            ended = self._admit(ended)
        if not ended:
            return
        finished = set(ended)
        keep = [slot for slot in range(len(batch.rows)) if slot not in finished]
        if not keep:
            self.batch = None
            return
        batch.cache.batch_select_indices(torch.tensor(keep, device=self.device))
        batch.rows = [batch.rows[slot] for slot in keep]
        batch.generators = [batch.generators[slot] for slot in keep]
        batch.pending = [batch.pending[slot] for slot in keep]
        batch.own, batch.positions = batch.own[keep], batch.positions[keep]

    def _admit(self, free: list[int]) -> list[int]:
        """Waiting prompts into the free rows, as long as both last; the rows left free."""
        import torch

        batch = self.batch
        assert batch is not None
        free = list(free)
        while free and self.waiting:
            group = self._take(len(free))
            slots, free = free[: len(group)], free[len(group) :]
            longest = max(len(self.prompts[row]) for row in group)
            if longest > batch.length:
                self._rearrange(max(longest, int(batch.own.sum(dim=1).max())))
            scratch = _batch_cache(self.model, longest)
            prefilled = self._prefill(group, scratch)
            end = batch.length
            for index, (slot, row) in enumerate(zip(slots, group, strict=True)):
                start = end - len(self.prompts[row])
                for target, source in zip(batch.cache.layers, scratch.layers, strict=True):
                    columns = prefilled.columns[index]
                    target.write_row(
                        slot,
                        start,
                        source.keys[index, :, columns],
                        source.values[index, :, columns],
                    )
                batch.own[slot] = False
                batch.own[slot, start:end] = True
                batch.positions[slot] = len(self.prompts[row]) - 1
                batch.rows[slot] = row
                batch.generators[slot] = torch.Generator().manual_seed(self.seeds[row])
            generators = [batch.generators[slot] for slot in slots]
            drawn = next_tokens(prefilled.logits, generators, self.decoding).tolist()
            for slot, row, token in zip(slots, group, drawn, strict=True):
                batch.pending[slot] = token
                if not self._record(row, token):
                    free.append(slot)
            self.counts.refilled += len(group)
        return free

    def _rearrange(self, width: int) -> None:
        """Every row's own columns moved, in order, to the end of a layout ``width`` wide."""
        import torch

        batch = self.batch
        assert batch is not None
        columns = torch.zeros((len(batch.rows), width), dtype=torch.long)
        own = torch.zeros((len(batch.rows), width), dtype=torch.bool)
        for slot in range(len(batch.rows)):
            found = batch.own[slot].nonzero().flatten()
            columns[slot, width - len(found) :] = found
            own[slot, width - len(found) :] = True
        for layer in batch.cache.layers:
            layer.rearrange(columns.to(self.device))
        batch.own = own
        self.counts.rearranged += 1

    def _prefill(self, group: list[int], cache: Any) -> _Prefilled:
        """Prompts through the model together into ``cache``: the prefix they share with the prompt
        admitted before copied, the further prefix they share once, each one's rest padded left."""
        prompts = [self.prompts[row] for row in group]
        shared = shared_prefix_length(prompts)
        copied = 0
        if self.previous is not None:
            copied = min(common_length(self.previous.tokens, prompts[0]), shared)
        if (len(group) - 1) * (shared - copied) < _MIN_PREFIX_SAVING:
            shared = copied  # not worth a pass of its own: computed in every row
        self._prefill_shared(cache, prompts[0], copied, shared, len(group))
        logits, columns, width = self._prefill_rest(cache, prompts, shared)
        if self.reserves:
            last = columns[-1]
            self.previous = _Admitted(
                prompts[-1],
                [layer.keys[-1:, :, last].clone() for layer in cache.layers],
                [layer.values[-1:, :, last].clone() for layer in cache.layers],
            )
        return _Prefilled(logits, columns, width)

    def _prefill_shared(
        self, cache: Any, prompt: Sequence[int], copied: int, shared: int, rows: int
    ) -> None:
        """The shared prefix: its first ``copied`` tokens from the prompt admitted before, the rest
        through the model once, as one sequence; its keys and values copied to every row."""
        import torch

        if not shared:
            return
        prefix: Any = DynamicCache(config=self.model.config)
        if copied:
            assert self.previous is not None
            for index, (keys, values) in enumerate(
                zip(self.previous.keys, self.previous.values, strict=True)
            ):
                prefix.update(keys[:, :, :copied], values[:, :, :copied], index)
            self.counts.copied_tokens += copied
        if shared > copied:
            self.model(
                input_ids=torch.tensor([list(prompt[copied:shared])], device=self.device),
                position_ids=torch.arange(copied, shared, device=self.device)[None],
                past_key_values=prefix,
                use_cache=True,
                logits_to_keep=1,
            )
            self.counts.prefill_tokens += shared - copied
        for index, layer in enumerate(prefix.layers):
            keys, values = layer.keys, layer.values
            cache.update(
                keys.expand(rows, *keys.shape[1:]), values.expand(rows, *values.shape[1:]), index
            )

    def _prefill_rest(
        self, cache: Any, prompts: list[Sequence[int]], shared: int
    ) -> tuple[Any, list[Any], int]:
        """Each prompt's tokens after the prefix, left-padded to one width, in one pass.

        Returns the next-token logits of each row, the cache columns that hold each prompt's
        tokens, and the width of the cache after the pass.
        """
        import torch

        rows = len(prompts)
        width = max(len(prompt) for prompt in prompts) - shared
        input_ids = torch.zeros((rows, width), dtype=torch.long)
        real = torch.zeros((rows, width), dtype=torch.bool)
        for row, prompt in enumerate(prompts):
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
        self.counts.prefill_tokens += rows * width
        columns = [row_visible.nonzero().flatten() for row_visible in visible]
        return logits, columns, shared + width

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
