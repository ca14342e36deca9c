"""The ``hf`` backend's scoring path: prefix-tree packing, and its fidelity on real values-study prompts.

The reference is the plainest computation there is: one forward pass per prompt, no padding, no
shared prefixes, float32, softmax over the full vocabulary at the last position. Distances between
distributions are Jensen-Shannon distances in bits from scipy (Lin 1991; Endres & Schindelin 2003).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from culture_probe.backends import ScoringRequest
from culture_probe.backends.hf import HFBackend
from culture_probe.engine import split_kernel
from culture_probe.engine.mixed import split_linear_class
from culture_probe.engine.packing import pack_prefix_trees
from culture_probe.engine.process import reuse_freed_activations
from culture_probe.errors import CultureProbeError

#: the fidelity bound: every prompt's option distribution within this JS distance of the reference
MAX_JS_DISTANCE_BITS = 0.01


def test_pack_shares_the_common_prefix_and_positions_follow_depth() -> None:
    [pack] = pack_prefix_trees([[5, 6, 9], [5, 6, 7, 8], [5, 1]])

    # lexicographic order: [5, 1], [5, 6, 7, 8], [5, 6, 9]
    assert pack.token_ids == [5, 1, 6, 7, 8, 9]
    assert pack.positions == [0, 1, 1, 2, 3, 2]
    assert pack.members == [2, 1, 0]
    assert pack.leaves == [1, 4, 5]
    assert pack.ancestors[4] == [0, 2, 3, 4]
    assert pack.ancestors[5] == [0, 2, 5]


def test_attention_mask_lets_each_node_see_exactly_its_path() -> None:
    [pack] = pack_prefix_trees([[1, 2, 3], [1, 2, 4]])

    mask = pack.attention_mask()[0, 0]

    expected = torch.tensor(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [1, 1, 0, 1],  # token 4 sees 1, 2 and itself, not its sibling 3
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_identical_sequences_share_every_node() -> None:
    [pack] = pack_prefix_trees([[3, 4], [3, 4], [3, 5]])

    assert pack.token_ids == [3, 4, 5]
    assert sorted(zip(pack.members, pack.leaves, strict=True)) == [(0, 1), (1, 1), (2, 2)]


def test_a_sequence_that_does_not_fit_starts_a_new_pack_with_its_whole_prefix() -> None:
    packs = pack_prefix_trees([[1, 2, 3], [1, 2, 4], [1, 2, 5]], pack_tokens=4)

    assert [pack.token_ids for pack in packs] == [[1, 2, 3, 4], [1, 2, 5]]
    assert [pack.positions for pack in packs] == [[0, 1, 2, 2], [0, 1, 2]]
    assert [pack.members for pack in packs] == [[0, 1], [2]]


def test_a_sequence_longer_than_a_pack_gets_a_pack_of_its_own() -> None:
    packs = pack_prefix_trees([[1, 2, 3, 4, 5], [9]], pack_tokens=2)

    assert [pack.token_ids for pack in packs] == [[1, 2, 3, 4, 5], [9]]


def test_an_empty_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pack_prefix_trees([[1], []])


@pytest.fixture(scope="module")
def values_requests(repo: Any) -> list[ScoringRequest]:
    """30 real prompts of the values study: two questions, five personas, all framings and orders.

    Picked so that they share prefixes at every depth: the chat header, a persona's system message,
    a question's wording, and the first options of the two orders.
    """
    from culture_probe.planning import prepare
    from culture_probe.scoring import requests_for

    plan = prepare(repo / "taxonomy" / "values.yaml").plan
    items = sorted(plan["item_id"].unique())[:2]
    proxies = sorted(plan["proxy"].unique())[:5]
    chosen = plan[plan["item_id"].isin(items) & plan["proxy"].isin(proxies)]
    chosen = chosen[chosen["paraphrase"] == chosen["paraphrase"].min()]
    chosen = chosen.sample(n=30, random_state=7) if len(chosen) > 30 else chosen
    requests = requests_for(chosen)
    assert len(requests) == 30
    return requests


def reference_distributions(backend: HFBackend, requests: list[ScoringRequest]) -> np.ndarray:
    """Option distributions from one unpadded float32 forward pass per prompt."""
    model = backend.model.float()
    rows = []
    with torch.inference_mode():
        for request in requests:
            ids = backend.tokenizer.encode(backend.prompt_text(request), add_special_tokens=False)
            logits = model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
            probs = torch.softmax(logits.double(), dim=-1)
            mass = [
                float(probs[backend.label_token_ids(label)].sum())
                for label in request.option_labels
            ]
            rows.append(np.array(mass) / sum(mass))
    return np.array(rows)


@pytest.fixture(scope="module")
def reference(hf_backend: HFBackend, values_requests: list[ScoringRequest]) -> np.ndarray:
    """One-pass float32 distributions of the 30 prompts; the tests that score against them are
    marked slow."""
    assert hf_backend.dtype == "float32", "the reference is a float32 run"
    return reference_distributions(hf_backend, values_requests)


def scored_distributions(
    backend: HFBackend, requests: list[ScoringRequest], **settings: Any
) -> np.ndarray:
    engine_options = backend.engine.options
    if "pack_tokens" in settings:  # the engine's own setting
        backend.engine.options = replace(engine_options, pack_tokens=settings.pop("pack_tokens"))
    saved = {name: getattr(backend, name) for name in settings}
    try:
        for name, value in settings.items():
            setattr(backend, name, value)
        results = backend.score(requests)
    finally:
        backend.engine.options = engine_options
        for name, value in saved.items():
            setattr(backend, name, value)
    assert [result.prompt_id for result in results] == [r.prompt_id for r in requests]
    return np.array([result.label_probs for result in results])


def js_distances_bits(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """scipy's distance, with 0 where rounding makes the divergence of near-equal rows negative.

    scipy takes the square root of a divergence that can come out a hair below zero for two
    distributions equal to about 1e-12, which gives NaN; real NaNs in the inputs still fail.
    """
    assert np.isfinite(first).all() and np.isfinite(second).all()
    distances = np.array([jensenshannon(p, q, base=2) for p, q in zip(first, second, strict=True)])
    return np.nan_to_num(distances, nan=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("pack_tokens", [512, 200])
def test_prefix_sharing_matches_one_pass_per_prompt(
    hf_backend: HFBackend,
    values_requests: list[ScoringRequest],
    reference: np.ndarray,
    pack_tokens: int,
) -> None:
    shared = scored_distributions(
        hf_backend, values_requests, prefix_sharing=True, pack_tokens=pack_tokens
    )

    distances = js_distances_bits(shared, reference)
    assert distances.max() < MAX_JS_DISTANCE_BITS
    # float32 with another summation order: far tighter than the bound
    assert np.abs(shared - reference).max() < 1e-4


def test_one_pack_holds_each_distinct_prefix_once(
    hf_backend: HFBackend, values_requests: list[ScoringRequest]
) -> None:
    encoded = [
        hf_backend.tokenizer.encode(hf_backend.prompt_text(r), add_special_tokens=False)
        for r in values_requests
    ]
    distinct_prefixes = {tuple(ids[:end]) for ids in encoded for end in range(1, len(ids) + 1)}

    [pack] = pack_prefix_trees(encoded, pack_tokens=10_000)

    assert len(pack.token_ids) == len(distinct_prefixes)
    assert len(pack.token_ids) < 0.75 * sum(len(ids) for ids in encoded)


@pytest.mark.slow
def test_padded_batches_match_one_pass_per_prompt(
    hf_backend: HFBackend, values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    batched = scored_distributions(hf_backend, values_requests, prefix_sharing=False, batch_size=8)

    assert js_distances_bits(batched, reference).max() < MAX_JS_DISTANCE_BITS


def test_distributions_sum_to_one_and_report_the_label_mass(
    hf_backend: HFBackend, values_requests: list[ScoringRequest]
) -> None:
    results = hf_backend.score(values_requests[:6])

    for result in results:
        assert sum(result.label_probs) == pytest.approx(1.0, abs=1e-9)
        assert all(p >= 0 for p in result.label_probs)
        assert 0.0 < result.option_mass <= 1.0


def test_label_tokens_are_the_bare_and_spaced_letter(hf_backend: HFBackend) -> None:
    tokenizer = hf_backend.tokenizer

    for label in ("A", "B", "E"):
        ids = hf_backend.label_token_ids(label)
        assert [tokenizer.decode([token]) for token in ids] == [label, " " + label]
        assert ids == [
            tokenizer.convert_tokens_to_ids(label),
            tokenizer.convert_tokens_to_ids("Ġ" + label),
        ]


def test_option_mass_is_the_label_tokens_share_of_the_next_token(
    hf_backend: HFBackend, values_requests: list[ScoringRequest]
) -> None:
    request = values_requests[0]
    ids = hf_backend.tokenizer.encode(hf_backend.prompt_text(request), add_special_tokens=False)
    with torch.inference_mode():
        logits = hf_backend.model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    probs = torch.softmax(logits.double(), dim=-1)
    expected_mass = sum(
        float(probs[hf_backend.label_token_ids(label)].sum()) for label in request.option_labels
    )

    [result] = hf_backend.score([request])

    assert result.option_mass == pytest.approx(expected_mass, rel=1e-4)


@pytest.fixture(scope="module")
def mixed_backend() -> Iterator[HFBackend]:
    backend = HFBackend(model="embedded", dtype="mixed")
    yield backend
    backend.close()


@pytest.mark.slow
def test_mixed_precision_stays_within_the_bound_of_float32(
    mixed_backend: HFBackend, values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    mixed = scored_distributions(mixed_backend, values_requests)

    distances = js_distances_bits(mixed, reference)
    assert distances.max() < MAX_JS_DISTANCE_BITS
    # the weights' rounding (to bfloat16, or to int16 steps) does move the answers: this is not a
    # float32 run in disguise
    assert distances.max() > 1e-4


@pytest.mark.slow
@pytest.mark.split_kernel
def test_mixed_scores_as_faithfully_with_the_split_kernel_as_with_mkl(
    mixed_backend: HFBackend,
    values_requests: list[ScoringRequest],
    reference: np.ndarray,
    request: pytest.FixtureRequest,
) -> None:
    build = split_kernel.split_kernel().build  # type: ignore[union-attr]
    # the module's backend packed its weights for the kernel at its first product
    with_kernel = scored_distributions(mixed_backend, values_requests)
    assert all(module.shared.packed is not None for module in split_projections(mixed_backend))
    request.getfixturevalue("without_kernel")
    backend = HFBackend(model="embedded", dtype="mixed")
    try:
        with_mkl = scored_distributions(backend, values_requests)
        assert all(module.shared.packed is None for module in split_projections(backend))
    finally:
        backend.close()
    apart = js_distances_bits(with_kernel, with_mkl)
    from_kernel, from_mkl = (js_distances_bits(d, reference) for d in (with_kernel, with_mkl))
    assert from_kernel.max() < MAX_JS_DISTANCE_BITS
    if build == "amx":
        # the tiles round the activations' remainder to int8, MKL keeps it in bfloat16: a few
        # millionths of each product apart, and as close to float32 as each other
        assert 0 < apart.max() < 1e-3  # measured: 4.1e-4
        assert abs(from_kernel.max() - from_mkl.max()) < 1e-3
    else:
        # the AVX-512 build's int16 weights keep 12 bits of each column where MKL's bfloat16
        # weights keep 8 bits of each value: further from MKL, and no further from float32
        assert apart.max() > 1e-3  # measured: 4.9e-3
        assert from_kernel.max() < from_mkl.max() + 1e-3
        assert np.median(from_kernel) < np.median(from_mkl)


@pytest.mark.slow
@pytest.mark.split_kernel
def test_compiled_mixed_layers_score_what_the_uncompiled_ones_score(
    mixed_backend: HFBackend, values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    from torch._dynamo.utils import counters

    backend = HFBackend(model="embedded", dtype="mixed", compile=True)
    try:
        graphs_after_load = counters["stats"]["unique_graphs"]
        compiled = scored_distributions(backend, values_requests, pack_tokens=200)
        assert counters["stats"]["unique_graphs"] == graphs_after_load
        assert backend.info().key()["compile"] is True
        assert not split_projections(backend)  # each projection calls the kernel on its own
    finally:
        backend.close()
    uncompiled = scored_distributions(mixed_backend, values_requests)
    # compiled float32 work differs in its last bits, and that can move an activation's integer
    # step by one: up to about 2**-15 of its row's largest value for the tiles' int8 remainder
    # (measured: 4e-4 bits apart), 2**-13 of its group's for AVX-512's int16 steps (1.4e-3 bits)
    assert js_distances_bits(compiled, uncompiled).max() < step_noise_bits()
    assert js_distances_bits(compiled, reference).max() < MAX_JS_DISTANCE_BITS


@pytest.mark.slow
@pytest.mark.split_kernel
def test_fused_mixed_layers_score_what_transformers_layers_score(
    mixed_backend: HFBackend, values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    layers = mixed_backend.model.config.num_hidden_layers
    assert mixed_backend.fused_layers == layers  # the default, where the kernel runs
    assert mixed_backend.info().options["fused_layers"] == layers
    backend = HFBackend(model="embedded", dtype="mixed", fused_layers=False)
    try:
        assert backend.fused_layers == 0
        by_layer = scored_distributions(backend, values_requests)
        padded_by_layer = scored_distributions(backend, values_requests, prefix_sharing=False)
    finally:
        backend.close()
    fused = scored_distributions(mixed_backend, values_requests)
    # a last-bit difference in a norm can move an integer step by one, as for compiled layers
    assert 0 < js_distances_bits(fused, by_layer).max() < step_noise_bits()
    assert js_distances_bits(fused, reference).max() < MAX_JS_DISTANCE_BITS
    # padded batches are not packed trees: the layers' own forward, the very same numbers
    padded = scored_distributions(mixed_backend, values_requests, prefix_sharing=False)
    assert np.array_equal(padded, padded_by_layer)


def test_fused_layers_must_be_true_or_false() -> None:
    with pytest.raises(CultureProbeError, match="fused_layers expects true or false, got 'yes'"):
        HFBackend(model="embedded", dtype="float32", fused_layers="yes")


def step_noise_bits() -> float:
    """How far apart two runs of the kernel may score when their float32 work differs in its last
    bits: one step of an activation's integer is 4 times larger with AVX-512's int16 inputs than
    with the tiles' int8 remainder."""
    build = split_kernel.split_kernel().build  # type: ignore[union-attr]
    return 1e-3 if build == "amx" else 3e-3


def split_projections(backend: HFBackend) -> list[Any]:
    return [m for m in backend.model.modules() if isinstance(m, split_linear_class())]


def test_mixed_precision_swaps_the_decoder_linears_and_keeps_the_vocabulary_projection(
    mixed_backend: HFBackend,
) -> None:
    linears = [m for m in mixed_backend.model.modules() if isinstance(m, torch.nn.Linear)]
    layers = mixed_backend.model.config.num_hidden_layers

    assert [type(m).__name__ for m in linears] == ["Linear"]  # lm_head alone
    assert mixed_backend.model.lm_head.weight.dtype == torch.float32
    split = split_projections(mixed_backend)
    assert len(split) == 7 * layers  # q, k, v, o, gate, up, down
    assert mixed_backend.info().dtype == "mixed"
    products = {id(module.shared): module.shared for module in split}
    assert len(products) == 4 * layers  # q/k/v share one product, gate/up another
    # by default every channel's remainder is carried
    assert mixed_backend.info().options["tail_channels"] is None
    assert "tail_channels" not in mixed_backend.info().key()
    assert all(product.tail is None for product in products.values())
    # where the split kernel runs, each weight is packed for it at load and held only in that layout
    packed_at_load = split_kernel.split_kernel() is not None
    assert all((p.packed is not None) == packed_at_load for p in products.values())
    assert all((p.weight is None) == packed_at_load for p in products.values())


@pytest.mark.slow
def test_mixed_with_tail_channels_carries_that_many_per_product_and_stays_close(
    values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    backend = HFBackend(model="embedded", dtype="mixed", tail_channels=64)
    try:
        split = split_projections(backend)
        tails = [module.shared.tail for module in split]
        assert all(tail is not None and len(tail.channels) == 64 for tail in tails)
        assert backend.info().options["tail_channels"] == 64
        # a partial split gives other answers, so it is part of the run's key; the default is not
        assert backend.info().key()["tail_channels"] == 64
        distances = js_distances_bits(scored_distributions(backend, values_requests), reference)
    finally:
        backend.close()
    # measured on the whole values study: max 0.0112 bits, 99th percentile 0.0070
    assert distances.max() < 0.015


class MallocInfo(ctypes.Structure):
    """glibc's ``struct mallinfo2``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def mapped_bytes() -> int:
    """Bytes glibc holds in mappings of their own, outside the heap."""
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallocInfo
    return int(mallinfo2().hblkhd)


def test_activation_sized_buffers_come_from_the_heap_once_freed_memory_is_kept() -> None:
    assert reuse_freed_activations()  # glibc: the machines this runs on
    before = mapped_bytes()

    buffer = torch.empty(4096, 3072, dtype=torch.bfloat16)  # 25 MB: a bfloat16 pack's gate/up

    assert mapped_bytes() - before < 1_000_000  # glibc's default would map all 25 MB apart
    del buffer


@pytest.mark.slow
def test_compiled_layers_score_what_the_uncompiled_model_scores(
    values_requests: list[ScoringRequest], reference: np.ndarray
) -> None:
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    backend = HFBackend(model="embedded", dtype="float32", compile=True)
    try:
        # compiled at load, by the warm-up packs: scoring itself compiles nothing more
        graphs_after_load = counters["stats"]["unique_graphs"]
        compiled = scored_distributions(backend, values_requests, pack_tokens=200)
        assert counters["stats"]["unique_graphs"] == graphs_after_load > graphs_before
        assert backend.info().key()["compile"] is True
    finally:
        backend.close()
    # float32 either way: fusing only changes the order of a few sums
    assert js_distances_bits(compiled, reference).max() < 1e-4


@pytest.mark.parametrize(
    ("dtype", "options", "message"),
    [
        ("float32", {"compile": "yes"}, "expects true or false, got 'yes'"),
        ("mixed", {"compile": True, "tail_channels": 64}, "splits every channel"),
    ],
)
def test_compile_refuses_values_that_are_not_true_or_false_and_partial_splits(
    dtype: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CultureProbeError, match=message):
        HFBackend(model="embedded", dtype=dtype, **options)


def test_compile_refuses_mixed_without_the_split_kernel_and_says_why(without_kernel: None) -> None:
    with pytest.raises(
        CultureProbeError, match="needs the split kernel, and CULTURE_PROBE_KERNEL=off"
    ):
        HFBackend(model="embedded", dtype="mixed", compile=True)
