"""Batched text generation: many prompts decoded together, each stopping at its own end.

Written and open answers are generations of up to ``max_new_tokens`` tokens each, and on a CPU one
decoding step costs about as much for a few prompts as for thirty: the step reads every weight
once, whatever the number of rows it multiplies. :func:`generate` therefore decodes ``batch_rows``
prompts together, and with ``Decoding.refill`` tops the batch up while prompts wait (continuous
batching):

- **Order.** Prompts are taken in the order of their token ids, so that prompts admitted together
  share prefixes (chat header, persona, question) and differ little in length.
- **Prefixes computed once.** Prompts admitted together (a batch's first rows, or a refill's
  newcomers) go through the model in one pass as a prefix tree
  (:func:`culture_probe.engine.packing.pack_prefix_trees`): every token they share is computed
  once, with no padding, each token attending to its own ancestors only (the tree attention of
  :mod:`culture_probe.engine.tree_attention` where the model runs it, a dense mask otherwise) at
  its depth as position id. Each row's keys and values are then gathered from its path through
  the tree: what the prompt alone would have computed, up to float rounding. On the benchmark's 64
  values-study prompts its three passes computed 3,771 prompt tokens where padded batches
  computed 5,347.
- **Refill in groups** (``Decoding.refill``, on by default). Answers are short and uneven (most
  a few tokens, a few the whole ``max_new_tokens``); a batch that only shrank would spend most of
  its steps on its few long rows, each step costing nearly what a full one does. Waiting prompts
  join the running batch once half of its rows are free (or all of them fit), in one prefill
  pass: one pass of many rows costs far less per token than many passes of a few, which on 2
  threads cost more than the steps they saved (benchmarks/RESULTS.md, "Generation").
- **Key/value cache.** Each step feeds one token a row, all written in one new column; keys and
  values are kept in a buffer reserved for the batch's rows and columns (:class:`ReservedLayer`),
  written in place rather than copied onto a longer tensor each step. A newcomer's prompt is
  written into a free row so that it ends at the current column, and each row's attention mask
  marks which columns are its own. When the columns run out, every row's own columns move to the
  end of a shorter layout (:meth:`ReservedLayer.rearrange`).
- **Own end.** A row stops at a stop token (EOS, the chat template's end of turn) or at
  ``max_new_tokens``, and leaves the batch at once, so a step costs less as the rows finish: the
  last rows move into the places of the finished ones, and only they are copied.
- **Own generator.** Sampling draws each row from a ``torch.Generator`` seeded with its prompt's
  seed: a sample depends on its prompt and seed, not on which prompts shared its batch, up to the
  float rounding that a different batch shape brings. Temperature 0 is greedy.

Models with sliding-window layers keep transformers' own cache for the batch: their batches are
not refilled.

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

from culture_probe.engine.packing import PrefixTreePack, pack_prefix_trees
from culture_probe.engine.tree_attention import NAME as TREE_ATTENTION
from culture_probe.engine.tree_attention import tree_blocks

#: end-of-turn tokens of common chat templates, used where rendering the template finds none
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class Decoding:
    """How to decode: greedy at ``temperature`` 0, else sampled (nucleus ``top_p`` below 1);
    ``batch_rows`` prompts at a time, topped up with waiting prompts once half the rows are free
    where ``refill``."""

    max_new_tokens: int
    batch_rows: int
    temperature: float = 0.0
    top_p: float = 1.0
    refill: bool = True

    @property
    def admit_at(self) -> int:
        """Free rows that let waiting prompts in (fewer where fewer wait): half the batch."""
        return max(1, self.batch_rows // 2)


@dataclass
class GenerationCounts:
    """What one :func:`generate` call did: its batches, refills, passes, steps and tokens."""

    #: batches started empty (the first, and each one after a batch ran out)
    batches: int = 0
    #: prompts admitted into a running batch
    refilled: int = 0
    #: prefill passes: a batch's first rows, or a group of newcomers, each pass one prefix tree
    prefills: int = 0
    #: decoding steps, each one token for every row of the batch
    steps: int = 0
    #: prompt tokens that went through the model: each prefix tree's nodes
    prefill_tokens: int = 0
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


def compacted_order(kept: Sequence[int], rows: int) -> list[int]:
    """Which old row each new row is, when only the ``kept`` of ``rows`` rows stay.

    The kept rows beyond the new count move into the places of the rows that left, so that a
    cache copies only them.

    Example:
        >>> compacted_order([0, 2, 4, 5], 6)  # rows 1 and 3 left: 4 and 5 take their places
        [0, 4, 2, 5]
    """
    count = len(kept)
    staying = set(kept)
    holes = [row for row in range(count) if row not in staying]
    movers = [row for row in kept if row >= count]
    order = list(range(count))
    for hole, mover in zip(holes, movers, strict=True):
        order[hole] = mover
    return order


class ReservedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's key/value cache in a buffer reserved for the whole batch.

    transformers' ``DynamicLayer`` appends a step by concatenation, which copies every cached key
    and value each step; here the buffer holds ``rows`` rows of ``capacity`` positions from the
    first update on, a step writes its own position only, and the first ``active`` rows are the
    batch. ``keys`` and ``values`` are views of the filled part.
    """

    def __init__(self, rows: int, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.rows = rows
        self.capacity = capacity
        self.active = 0
        self.length = 0
        self._key_buffer: Any = None
        self._value_buffer: Any = None

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        import torch

        _, heads, _, width = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        shape = (self.rows, heads, self.capacity, width)
        self._key_buffer = torch.empty(shape, dtype=self.dtype, device=self.device)
        self._value_buffer = torch.empty(
            (*shape[:3], value_states.shape[-1]), dtype=self.dtype, device=self.device
        )
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        """The given rows' next positions: every active row's, or the first rows' of a batch."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.active = key_states.shape[0]
        end = self.length + key_states.shape[-2]
        self._key_buffer[: self.active, :, self.length : end] = key_states
        self._value_buffer[: self.active, :, self.length : end] = value_states
        self.length = end
        self._show_filled()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: Any) -> None:
        """Row ``r`` becomes old row ``indices[r]``; only the rows that move are copied."""
        import torch

        if self.is_initialized:
            moved = (indices != torch.arange(len(indices), device=indices.device)).nonzero()
            targets = moved.flatten()
            if len(targets):
                sources = indices[targets]
                self._key_buffer[targets] = self._key_buffer[sources]
                self._value_buffer[targets] = self._value_buffer[sources]
        self.active = len(indices)
        self._show_filled()

    def write_rows(self, first: int, keys: Any, values: Any) -> None:
        """Rows from ``first`` on (``[rows, heads, positions, width]``, every filled column)."""
        end = first + keys.shape[0]
        self._key_buffer[first:end, :, : self.length] = keys
        self._value_buffer[first:end, :, : self.length] = values
        self.active = end
        self._show_filled()

    def rearrange(self, columns: Any) -> None:
        """Row ``r``'s column ``j`` becomes its old column ``columns[r, j]``; the rest is dropped."""
        import torch

        rows, width = columns.shape
        index = columns[:, None, :, None]
        for name in ("_key_buffer", "_value_buffer"):
            buffer = getattr(self, name)
            moved = torch.empty_like(buffer)
            shape = (rows, buffer.shape[1], width, buffer.shape[-1])
            moved[:rows, :, :width] = buffer[:rows].gather(2, index.expand(shape))
            setattr(self, name, moved)
        self.length = width
        self._show_filled()

    def _show_filled(self) -> None:
        self.keys = self._key_buffer[: self.active, :, : self.length]
        self.values = self._value_buffer[: self.active, :, : self.length]


def _reserves(model: Any) -> bool:
    """Whether every layer attends to all positions, so that a reserved buffer can hold them."""
    config = model.config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return not getattr(config, "sliding_window", None)


def _batch_cache(model: Any, rows: int, capacity: int) -> Any:
    """An empty cache for a batch: reserved buffers where every layer attends to all positions."""
    if not _reserves(model):
        return DynamicCache(config=model.config)  # sliding windows keep transformers' own layers
    return _reserved_cache(model, rows, capacity)


def _reserved_cache(model: Any, rows: int, capacity: int) -> Any:
    config = model.config.get_text_config(decoder=True)
    return Cache(layers=[ReservedLayer(rows, capacity) for _ in range(config.num_hidden_layers)])


@dataclass
class _Prefilled:
    """Prompts that went through the model as one prefix tree: the tree's keys and values, the
    nodes holding each prompt's tokens, and the next-token logits at each prompt's end."""

    cache: Any
    paths: list[list[int]]
    logits: Any

    def rows(self, layer: int, width: int) -> tuple[Any, Any]:
        """One layer's keys and values of every prompt as rows ``width`` wide, each prompt at the
        right end and its first token repeated to its left (masked out, but finite)."""
        import torch

        index = torch.tensor([[path[0]] * (width - len(path)) + path for path in self.paths])
        source = self.cache.layers[layer]
        keys, values = source.keys[0][:, index], source.values[0][:, index]
        return keys.transpose(0, 1), values.transpose(0, 1)


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
        self.layers = model.config.get_text_config(decoder=True).num_hidden_layers
        self.tree_attention = getattr(model.config, "_attn_implementation", None) == TREE_ATTENTION
        self.reserves = _reserves(model)
        self.refill = decoding.refill and self.reserves
        self.longest = max((len(prompt) for prompt in prompts), default=0)
        self.waiting = deque(sorted(range(len(prompts)), key=lambda index: list(prompts[index])))
        self.written: list[list[int]] = [[] for _ in prompts]
        self.batch: _Running | None = None

    def run(self) -> None:
        while self.waiting or self.batch is not None:
            if self.batch is None:
                self._start()
            else:
                self._step()

    def _take(self, count: int) -> list[int]:
        return [self.waiting.popleft() for _ in range(min(count, len(self.waiting)))]

    def _record(self, rows: Sequence[int], drawn: Sequence[int]) -> list[int]:
        """Append each row's drawn token to its answer; the places of the rows that ended."""
        ended = []
        for slot, (row, token) in enumerate(zip(rows, drawn, strict=True)):
            if token in self.stop_tokens:
                ended.append(slot)
                continue
            self.written[row].append(token)
            if len(self.written[row]) >= self.decoding.max_new_tokens:
                ended.append(slot)
        return ended

    def _start(self) -> None:
        """A batch from empty: its first prompts prefilled, then gathered into its own cache."""
        import torch

        group = self._take(self.decoding.batch_rows)
        # room for every prompt's length, and (with refill) for steps between rearrangements
        room = self.decoding.max_new_tokens * (2 if self.refill else 1)
        capacity = self.longest + room
        cache = _batch_cache(self.model, self.decoding.batch_rows, capacity)
        prefilled = self._prefill(group)
        width = max(len(self.prompts[row]) for row in group)
        for layer in range(self.layers):
            keys, values = prefilled.rows(layer, width)
            cache.update(keys.contiguous(), values.contiguous(), layer)
        generators = [torch.Generator().manual_seed(self.seeds[row]) for row in group]
        drawn = next_tokens(prefilled.logits, generators, self.decoding).tolist()
        own, positions = self._own_columns(group, width)
        self.batch = _Running(cache, group, generators, drawn, own, positions, capacity)
        self.counts.batches += 1
        self._settle(self._record(group, drawn))

    def _step(self) -> None:
        """One token for every row; finished rows leave, waiting prompts may join."""
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
        drawn = next_tokens(logits[:, -1], batch.generators, self.decoding).tolist()
        batch.pending = drawn
        self._settle(self._record(batch.rows, drawn))

    def _settle(self, ended: list[int]) -> None:
        """Finished rows out; waiting prompts in once enough rows are free (with refill)."""
        batch = self.batch
        assert batch is not None
        self._drop(ended)
        if not batch.rows:
            self.batch = None
            return
        free = self.decoding.batch_rows - len(batch.rows)
        if self.refill and self.waiting and free >= min(self.decoding.admit_at, len(self.waiting)):
            self._drop(self._admit(self._take(free)))
            if not batch.rows:
                self.batch = None

    def _drop(self, ended: list[int]) -> None:
        """Rows out of the batch, the last rows moved into their places."""
        import torch

        batch = self.batch
        assert batch is not None
        if not ended:
            return
        finished = set(ended)
        order = compacted_order(
            [slot for slot in range(len(batch.rows)) if slot not in finished], len(batch.rows)
        )
        if order:
            batch.cache.batch_select_indices(torch.tensor(order, device=self.device))
        batch.rows = [batch.rows[slot] for slot in order]
        batch.generators = [batch.generators[slot] for slot in order]
        batch.pending = [batch.pending[slot] for slot in order]
        batch.own, batch.positions = batch.own[order], batch.positions[order]

    def _admit(self, group: list[int]) -> list[int]:
        """Waiting prompts into the batch's free rows, in one prefill pass; the places of those
        that ended at their first token."""
        import torch

        batch = self.batch
        assert batch is not None
        prefilled = self._prefill(group)
        longest = max(len(self.prompts[row]) for row in group)
        if longest > batch.length:
            self._rearrange(max(longest, int(batch.own.sum(dim=1).max())))
        first = len(batch.rows)
        for layer, target in enumerate(batch.cache.layers):
            keys, values = prefilled.rows(layer, batch.length)
            target.write_rows(first, keys, values)
        generators = [torch.Generator().manual_seed(self.seeds[row]) for row in group]
        drawn = next_tokens(prefilled.logits, generators, self.decoding).tolist()
        own, positions = self._own_columns(group, batch.length)
        batch.own = torch.cat([batch.own, own])
        batch.positions = torch.cat([batch.positions, positions])
        batch.rows += group
        batch.generators += generators
        batch.pending += drawn
        self.counts.refilled += len(group)
        return [first + slot for slot in self._record(group, drawn)]

    def _own_columns(self, group: list[int], width: int) -> tuple[Any, Any]:
        """Each prompt's columns, the last of a layout ``width`` wide, and its last position id."""
        import torch

        lengths = [len(self.prompts[row]) for row in group]
        own = (
            torch.arange(width)[None]
            >= torch.tensor([width - length for length in lengths])[:, None]
        )
        return own, torch.tensor([length - 1 for length in lengths])

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

    def _prefill(self, group: list[int]) -> _Prefilled:
        """Prompts through the model together as one prefix tree, every shared token once."""
        import torch

        prompts = [self.prompts[row] for row in group]
        [pack] = pack_prefix_trees(prompts, sum(len(prompt) for prompt in prompts))
        nodes = len(pack.token_ids)
        cache = _reserved_cache(self.model, 1, nodes)
        extra: dict[str, Any] = {}
        if self.tree_attention:
            # the blocks carry the tree; a one-element mask keeps transformers from building one
            extra["tree_blocks"] = tree_blocks(pack.positions, device=self.device, dtype=self.dtype)
            sees = torch.ones((1, 1, 1), dtype=torch.bool)
        else:
            sees = pack.attention_mask()[0]
        logits = self._forward(
            cache,
            torch.tensor([pack.token_ids]),
            torch.tensor([pack.positions]),
            sees,
            logits_at=torch.tensor(pack.leaves, device=self.device),
            **extra,
        )[0]
        self.counts.prefills += 1
        self.counts.prefill_tokens += nodes
        return _Prefilled(
            cache, _paths_in_group_order(pack, len(group)), _in_group_order(pack, logits)
        )

    def _forward(
        self,
        cache: Any,
        input_ids: Any,
        positions: Any,
        sees: Any,
        logits_at: Any = 1,
        **extra: Any,
    ) -> Any:
        """Next-token logits ``[rows, kept, vocab]`` at ``logits_at`` (the last column by default);
        ``sees`` is ``[rows, queries, keys]``."""
        import torch

        # an additive 4D mask reaches the attention untouched (transformers builds none of its own)
        mask = torch.zeros(sees.shape, dtype=self.dtype).masked_fill_(~sees, float("-inf"))
        output = self.model(
            input_ids=input_ids.to(self.device),
            position_ids=positions.to(self.device),
            attention_mask=mask[:, None].to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=logits_at,
            **extra,
        )
        return output.logits.float().cpu()


def _paths_in_group_order(pack: PrefixTreePack, count: int) -> list[list[int]]:
    """The nodes holding each member's tokens, root to leaf, by the member's place in its group."""
    paths: list[list[int]] = [[] for _ in range(count)]
    for member, leaf in zip(pack.members, pack.leaves, strict=True):
        paths[member] = pack.ancestors[leaf]
    return paths


def _in_group_order(pack: PrefixTreePack, rows: Any) -> Any:
    """Rows given in the pack's order of members, put in the order of the group."""
    import torch

    order = torch.empty(len(pack.members), dtype=torch.long)
    order[torch.tensor(pack.members)] = torch.arange(len(pack.members))
    return rows[order]


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
