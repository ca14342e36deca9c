"""The openai backend against a real OpenAI-compatible server: llama.cpp's, on loopback.

``python -m llama_cpp.server`` serves the embedded SmolLM2-135M-Instruct GGUF file (Q4_1) and is
started once for the module. Faults are real too: a small HTTP server in front of it
(``tests/fault_server.py``) answers 429 and 5xx or strips the log-probabilities, and one test kills
the server process in the middle of a ``culture-probe score`` run and restarts it. The other faults
(Retry-After, retry budget, malformed and huge replies, a server dying) are in
``test_openai_faults.py``.

Agreement with the hf backend. llama.cpp computes with the Q4_1 weights in its own quantized
kernels, which also quantize the activations to 8 bits (Q8_1 blocks) for each dot product;
transformers dequantizes the same file to float32 once and computes in float32. The option
distributions therefore differ by a small Jensen-Shannon distance (measured on the 48 prompts here:
0.027 bits on average, at most 0.051; the same most likely option on all 48). The server returns only
the top 20 tokens; for this model and these prompts all four labels are always inside, so nothing
is rescored here (labels outside them: ``test_openai_exact.py``). See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from culture_probe.backends import ScoringStopped, create_backend
from culture_probe.backends.generation import short_answer_result
from culture_probe.backends.openai import NoLogprobsWarning, OpenAIBackend, RetryPolicy
from culture_probe.errors import CultureProbeError
from culture_probe.models import embedded_gguf
from culture_probe.planning import PlanFilter, prepare
from culture_probe.scoring import build_manifest, requests_for, score_plan, write_responses
from culture_probe.store import RunDirectory
from fault_server import (
    NO_LOGPROBS,
    FaultServer,
    InterruptedRun,
    LlamaServer,
    free_port,
    status,
)

ITEMS = ("family_importance", "generalised_trust")


@pytest.fixture(scope="module")
def server(llama_server: LlamaServer) -> LlamaServer:
    return llama_server


@pytest.fixture(scope="module")
def prepared(repo: Path) -> Any:
    """The JP prompts with letter labels, where the model puts most of its mass: with "1." or
    "(a)" the little mass left on the labels magnifies the difference between llama.cpp's 8-bit
    activations and float32."""
    full = prepare(repo / "taxonomy" / "values.yaml", PlanFilter(ITEMS, ("JP",)))
    letters = full.plan[full.plan["enumerator"] == "A."].reset_index(drop=True)
    return dataclasses.replace(full, plan=letters)


@pytest.fixture(scope="module")
def requests(prepared: Any) -> list:
    return requests_for(prepared.plan)


@pytest.fixture(scope="module")
def direct_results(server: LlamaServer, requests: list) -> list:
    backend = OpenAIBackend(base_url=server.url, concurrency=4)
    try:
        return backend.score(requests)
    finally:
        backend.close()


def assert_same_probs(results: list, expected: list) -> None:
    """Same prompts, same server: the same probabilities up to float formatting in JSON."""
    np.testing.assert_allclose(
        [r.label_probs for r in results], [r.label_probs for r in expected], atol=1e-6
    )


def quick(url: str, **options: Any) -> OpenAIBackend:
    """A backend with short retry waits, so that the fault tests stay fast."""
    return OpenAIBackend(base_url=url, backoff=0.01, **options)


def test_option_distributions_agree_with_the_hf_backend(
    hf_backend: Any, requests: list, direct_results: list
) -> None:
    assert len(requests) == 16
    from_hf = hf_backend.score(requests)
    server = np.array([r.label_probs for r in direct_results])
    local = np.array([r.label_probs for r in from_hf])
    distances = jensenshannon(server, local, axis=1, base=2)
    agreement = float(np.mean(server.argmax(axis=1) == local.argmax(axis=1)))
    print(f"JS distance max {distances.max():.4f} mean {distances.mean():.4f}; argmax {agreement}")
    # measured: max 0.051, mean 0.027 bits, argmax agreement 1.0 (48 prompts). llama.cpp's Q4_1 dot
    # products quantize the activations to 8 bits (Q8_1 blocks of 32) at every layer; transformers
    # keeps them in float32. The top-20 cut-off costs nothing here: every label is in the top 20.
    assert distances.max() < 0.08
    assert distances.mean() < 0.04
    assert agreement >= 0.95
    # the mass on the labels moves with the same rounding: measured at most 0.09 apart
    mass_gap = np.abs(
        np.array([r.option_mass for r in direct_results]) - [r.option_mass for r in from_hf]
    )
    print(f"option mass: max difference {mass_gap.max():.3f}, mean {mass_gap.mean():.3f}")
    assert mass_gap.max() < 0.15
    assert np.allclose(server.sum(axis=1), 1.0)


def test_concurrency_does_not_change_results_or_their_order(
    server: LlamaServer, requests: list, direct_results: list
) -> None:
    for concurrency in (1, 8):
        backend = OpenAIBackend(base_url=server.url, concurrency=concurrency)
        results = backend.score(requests[:8])
        backend.close()
        assert [r.prompt_id for r in results] == [r.prompt_id for r in requests[:8]]
        assert_same_probs(results, direct_results[:8])


def test_backend_info_names_the_served_model_and_the_mode(server: LlamaServer) -> None:
    backend = OpenAIBackend(model="embedded", base_url=server.url)
    info = backend.info()
    backend.close()
    assert info.backend == "openai"
    assert info.mode == "logprobs"
    assert info.model_hash == f"openai:{embedded_gguf()}"
    assert info.options["top_logprobs"] == 20
    assert "mode_note" not in info.options


def test_429_and_500_answers_for_a_while_are_ridden_out(
    server: LlamaServer, requests: list, direct_results: list
) -> None:
    proxy = FaultServer(server.url)
    backend = quick(proxy.url, concurrency=2)
    codes = (429, 429, 500, 503, 429, 502)
    proxy.fail_next(*(status(code, "0" if code == 429 else None) for code in codes))
    try:
        results = backend.score(requests[:8])
    finally:
        backend.close()
        proxy.close()
    assert proxy.injected() == [f"status {code}" for code in codes]
    assert backend.retries == 6
    assert backend.info().options["retry_causes"] == {
        "HTTP 429": 3,
        "HTTP 500": 1,
        "HTTP 502": 1,
        "HTTP 503": 1,
    }
    assert_same_probs(results, direct_results[:8])


def test_a_client_error_is_not_retried_and_names_the_status(
    server: LlamaServer, requests: list
) -> None:
    proxy = FaultServer(server.url)
    backend = quick(proxy.url, concurrency=1, mode="logprobs")
    proxy.fail_next(status(401, body=b'{"error": "invalid api key"}'))
    try:
        with pytest.raises(
            ScoringStopped, match=r"answered HTTP 401: .*invalid api key"
        ) as stopped:
            backend.score(requests[:3])
    finally:
        backend.close()
        proxy.close()
    assert backend.retries == 0
    # the refused prompt has no result; one already in flight may have finished and is kept
    assert 0 not in stopped.value.completed
    assert len(stopped.value.completed) < 3


def test_a_server_without_logprobs_switches_to_generate_mode_and_says_so(
    server: LlamaServer, prepared: Any, requests: list
) -> None:
    proxy = FaultServer(server.url)
    proxy.fail_for(60, NO_LOGPROBS)
    try:
        with pytest.warns(NoLogprobsWarning, match="no log-probabilities"):
            backend = quick(proxy.url, temperature=0.7, max_new_tokens=16)
        results = backend.score(requests[:6])
        manifest = build_manifest(prepared, backend)
        backend.close()
    finally:
        proxy.close()
    assert manifest["backend"]["mode"] == "generate"
    assert "no log-probabilities" in manifest["backend"]["options"]["mode_note"]
    assert manifest["backend"]["temperature"] == 0.7
    assert all(result.generated for result in results)
    for result in results:
        if result.outcome == "answered":
            assert sorted(result.label_probs) == [0.0, 0.0, 0.0, 1.0]
        else:
            assert result.label_probs == ()


def test_generate_mode_is_reproducible_under_the_same_seed(
    server: LlamaServer, requests: list
) -> None:
    texts = []
    for _ in range(2):
        backend = OpenAIBackend(base_url=server.url, mode="generate", temperature=1.0)
        texts.append([r.generated for r in backend.score(requests[:4])])
        backend.close()
    assert texts[0] == texts[1]
    assert all(texts[0])


def test_short_answers_are_the_servers_completions_and_a_rerun_resumes(
    server: LlamaServer, scored_blend_run: Callable[[Any], Any]
) -> None:
    backend = OpenAIBackend(base_url=server.url, temperature=0.0, max_new_tokens=12)
    try:
        scored = scored_blend_run(backend)
    finally:
        backend.close()
    prepared = scored.prepared
    stored = scored.responses.set_index("prompt_id")
    for request in requests_for(prepared.plan):
        # the same request sent by hand: the stored text is this prompt's answer, not another's
        reply = httpx.post(
            f"{server.url}/chat/completions",
            json={
                "messages": request.messages(),
                "max_tokens": 12,
                "temperature": 0.0,
                "top_p": 1.0,
                "seed": request.seed,
            },
            timeout=60,
        ).json()
        text = reply["choices"][0]["message"]["content"]
        assert text.strip(), "llama.cpp wrote nothing"
        assert stored.loc[request.prompt_id, "generated"] == text
        assert (
            stored.loc[request.prompt_id, "outcome"] == short_answer_result(request, text).outcome
        )
    assert stored["match"].notna().all()


def test_the_request_budget_stops_the_run_after_saving_what_it_has(
    server: LlamaServer, prepared: Any, direct_results: list, tmp_path: Path
) -> None:
    plan = prepared.plan.iloc[:12]
    # two requests when the backend starts (model list, log-probability probe), then 7 prompts:
    # the budget ends inside chunk 3
    capped = quick(server.url, concurrency=1, max_requests=9, chunk_size=3)
    run = RunDirectory.open(tmp_path / "run", build_manifest(prepared, capped), plan)
    with pytest.raises(ScoringStopped, match="max_requests=9"):
        score_plan(run, plan, capped)
    capped.close()
    assert len(run.results()) == 7
    resumed = quick(server.url, concurrency=2)
    assert score_plan(run, plan, resumed) == 5
    resumed.close()
    responses = write_responses(run, plan)
    assert len(responses) == 12
    expected = {r.prompt_id: r.option_mass for r in direct_results}
    assert responses["option_mass"].tolist() == pytest.approx(
        [expected[prompt_id] for prompt_id in plan["prompt_id"]], abs=1e-6
    )


def test_base_url_and_api_key_come_from_the_environment(
    server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = FaultServer(server.url)
    monkeypatch.delenv("CULTURE_PROBE_BASE_URL", raising=False)
    monkeypatch.delenv("CULTURE_PROBE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", proxy.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment")
    try:
        backend = create_backend("openai", model="embedded")
        backend.close()
    finally:
        proxy.close()
    assert backend.info().options["base_url"] == proxy.url
    assert proxy.headers[0]["Authorization"] == "Bearer sk-from-environment"
    assert "sk-from-environment" not in json.dumps(backend.info().options)


def test_an_unreachable_server_is_a_clear_error_at_start() -> None:
    port = free_port()
    started = time.monotonic()
    # at start-up a refused connection is a wrong base_url, not a server to wait for
    with pytest.raises(CultureProbeError, match=f"cannot reach .*127.0.0.1:{port}.*ConnectError"):
        quick(f"http://127.0.0.1:{port}/v1", retry_budget_s=60)
    assert time.monotonic() - started < 5


def test_retry_waits_grow_exponentially_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(backoff=0.5, max_wait=3.0)
    for attempt, ceiling in enumerate((0.5, 1.0, 2.0, 3.0, 3.0)):
        waits = [policy.wait_before(attempt) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) < ceiling
        assert max(waits) - min(waits) > ceiling / 10  # jittered, not a fixed schedule
    assert policy.wait_before(0, retry_after="2") == 2.0
    # the server's ask is honoured beyond our own longest wait, but never past the budget's end
    assert policy.wait_before(0, retry_after="120") == 120.0
    assert policy.wait_before(0, retry_after="120", remaining=7.5) == 7.5
    assert policy.wait_before(4, remaining=0.25) == 0.25
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    assert 58 <= policy.wait_before(0, retry_after=in_a_minute) <= 60


def test_a_server_killed_mid_run_stops_the_run_and_the_same_command_resumes_it(
    served_values_run: InterruptedRun, direct_results: list
) -> None:
    out, stopped, resumed = (
        served_values_run.out,
        served_values_run.stopped,
        served_values_run.resumed,
    )
    assert stopped.returncode == 2, stopped.stderr
    assert "run the same command again to resume" in stopped.stderr
    total = len(RunDirectory(out).plan())
    assert 8 <= served_values_run.n_saved < total
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {served_values_run.n_saved} of {total} prompts already scored" in (
        resumed.stderr
    )
    responses = pd.read_parquet(out / "responses.parquet")
    assert len(responses) == total == 96
    assert responses["prompt_id"].is_unique
    assert set(responses["outcome"]) == {"answered"}
    # nothing lost or changed by the interruption: the JP prompts match an uninterrupted run
    expected = {r.prompt_id: r.option_mass for r in direct_results}
    shared = responses[responses["prompt_id"].isin(expected)]
    assert len(shared) == 16
    assert shared["option_mass"].tolist() == pytest.approx(
        [expected[p] for p in shared["prompt_id"]], abs=1e-6
    )
