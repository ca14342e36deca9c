"""The openai backend against a server that misbehaves on purpose, in front of a real one.

``tests/fault_server.py`` forwards to llama.cpp's server (the embedded SmolLM2 GGUF) and answers 429
and 5xx for a while, with ``Retry-After`` in seconds, as an HTTP date or not at all; resets a
connection; sends truncated JSON, an HTML page, a reply without ``choices`` or without
log-probabilities, a huge body; or dies in the middle of a run. Every answer that does get through
must equal a clean run's, every retry must be counted, and only the faulted prompts may be lost.
Budgets and waits are small so that the whole file runs in well under a minute.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from culture_probe.analysis import analyze
from culture_probe.analysis._tidy import tidy_responses
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.backends import ScoredPrompt, ScoringRequest, ScoringStopped
from culture_probe.backends._http import RetryPolicy
from culture_probe.backends.openai import MalformedReplyWarning, OpenAIBackend, OpenAIOptions
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.planning import PlanFilter, prepare
from culture_probe.runner import score_study
from culture_probe.scoring import build_manifest, requests_for, score_plan, write_responses
from culture_probe.store import RunDirectory
from fault_server import (
    HTML,
    NO_CHOICES_REPLY,
    NO_LOGPROBS,
    RESET,
    TRUNCATED,
    FaultServer,
    LlamaServer,
    http_date_in,
    huge,
    status,
)

ITEMS = ("family_importance", "generalised_trust")


@pytest.fixture(scope="module")
def server(llama_server: LlamaServer) -> LlamaServer:
    return llama_server


@pytest.fixture(scope="module")
def prepared(repo: Path) -> Any:
    return prepare(repo / "taxonomy" / "values.yaml", PlanFilter(ITEMS, ("JP",)))


@pytest.fixture(scope="module")
def plan(prepared: Any) -> pd.DataFrame:
    """8 prompts whose user messages all differ, so that each is one request of its own."""
    rows = prepared.plan.drop_duplicates("user").iloc[:8]
    assert len(rows) == 8 and rows["text_hash"].is_unique
    return rows


@pytest.fixture(scope="module")
def requests(plan: pd.DataFrame) -> list[ScoringRequest]:
    return requests_for(plan)


@pytest.fixture(scope="module")
def clean(server: LlamaServer, requests: list[ScoringRequest]) -> list[ScoredPrompt]:
    """The same prompts straight from llama.cpp's server, without faults."""
    backend = OpenAIBackend(base_url=server.url, concurrency=2)
    try:
        return backend.score(requests)
    finally:
        backend.close()


@pytest.fixture
def faults(server: LlamaServer) -> Iterator[FaultServer]:
    with FaultServer(server.url, lifetime_s=60) as running:
        yield running


def backend_for(faults: FaultServer, **options: Any) -> OpenAIBackend:
    """A backend through the fault server, with short waits, in logprobs mode (no probe request).

    Started before a test sets its faults, unless the test is about starting."""
    return OpenAIBackend(base_url=faults.url, backoff=0.02, **{"mode": "logprobs", **options})


def assert_same_probs(results: list[ScoredPrompt], expected: list[ScoredPrompt]) -> None:
    assert [r.prompt_id for r in results] == [r.prompt_id for r in expected]
    np.testing.assert_allclose(
        [r.label_probs for r in results], [r.label_probs for r in expected], atol=1e-6
    )


def test_429_with_retry_after_in_seconds_is_waited_out_exactly_as_asked(
    faults: FaultServer, requests: list[ScoringRequest], clean: list[ScoredPrompt]
) -> None:
    backend = backend_for(faults, concurrency=1, retry_budget_s=10)
    # attempts at 0, 1 and 2 s fall inside the 2.5 s window; the one at 3 s gets through. Our own
    # backoff (0.02 s, doubling) would have made many more attempts in that time.
    faults.fail_for(2.5, status(429, "1"))
    results = backend.score(requests[:1])
    options = backend.info().options
    backend.close()
    assert faults.injected() == ["status 429"] * 3
    assert options["retries"] == backend.retries == 3
    assert options["retry_causes"] == {"HTTP 429": 3}
    assert options["retry_wait_s"] == pytest.approx(3.0, abs=0.01)
    assert_same_probs(results, clean[:1])


def test_retry_after_as_an_http_date_is_honoured(
    faults: FaultServer, requests: list[ScoringRequest], clean: list[ScoredPrompt]
) -> None:
    backend = backend_for(faults, concurrency=1, retry_budget_s=10)
    faults.fail_for(1.0, status(503, http_date_in(1)))  # asks for 1-2 s: past the window
    results = backend.score(requests[:1])
    backend.close()
    assert faults.injected() == ["status 503"]
    assert backend.retries == 1
    assert 0.9 <= backend.info().options["retry_wait_s"] <= 2.05
    assert_same_probs(results, clean[:1])


def test_without_retry_after_the_waits_back_off_and_every_retry_is_counted(
    faults: FaultServer, requests: list[ScoringRequest], clean: list[ScoredPrompt]
) -> None:
    backend = backend_for(faults, concurrency=2, retry_budget_s=10)
    faults.fail_for(1.0, status(503))
    results = backend.score(requests[:2])
    backend.close()
    injected = len(faults.injected())
    # each 503 was retried once, and only those; backoff from 0.02 s doubling reaches 1 s in ~6
    assert backend.retries == injected
    assert 2 * 3 <= injected <= 2 * 10
    # both requests in flight waited out the whole second
    assert backend.info().options["retry_wait_s"] >= 2 * 0.9
    assert_same_probs(results, clean[:2])


def test_a_500_once_and_a_reset_connection_are_ridden_out_with_the_same_answers(
    faults: FaultServer, requests: list[ScoringRequest], clean: list[ScoredPrompt]
) -> None:
    backend = backend_for(faults, concurrency=1)
    faults.fail_next(status(500), RESET, status(502))
    results = backend.score(requests[:3])
    backend.close()
    assert faults.injected("status") + faults.injected("reset") == [
        "status 500",
        "status 502",
        "reset",
    ]
    assert backend.retries == 3
    causes = backend.info().options["retry_causes"]
    assert causes == {"HTTP 500": 1, "HTTP 502": 1, "RemoteProtocolError": 1}
    assert_same_probs(results, clean[:3])


def test_the_start_up_probe_rides_out_a_429_and_the_manifest_counts_its_retries(
    faults: FaultServer, prepared: Any
) -> None:
    faults.fail_for(1.5, status(429))  # the model list and the log-probability probe both get it
    backend = backend_for(faults, mode="auto", retry_budget_s=10)
    manifest = build_manifest(prepared, backend)
    backend.close()
    assert backend.mode == "logprobs"
    injected = len(faults.injected())
    assert injected >= 4
    assert manifest["backend"]["options"]["retries"] == injected
    assert manifest["backend"]["options"]["retry_causes"] == {"HTTP 429": injected}


def test_the_default_budget_rides_out_at_least_two_minutes() -> None:
    defaults = OpenAIOptions()  # the defaults the backend reads its options over
    assert defaults.retry_budget_s >= 120 and RetryPolicy().budget_s == defaults.retry_budget_s
    assert defaults.max_retries == 0  # no count cap that would end the wait sooner


def test_a_429_past_the_budget_names_the_status_the_servers_words_and_the_option(
    faults: FaultServer,
) -> None:
    faults.fail_for(30, status(429, body=b'{"error": "rate limited: 3 requests per minute"}'))
    started = time.monotonic()
    with pytest.raises(CultureProbeError) as error:
        backend_for(faults, retry_budget_s=1)
    assert time.monotonic() - started < 3
    message = str(error.value)
    assert f"GET {faults.url}/models" in message
    assert "HTTP 429" in message
    assert "rate limited: 3 requests per minute" in message
    assert "retry_budget_s=SECONDS (now 1)" in message


def test_malformed_replies_make_exactly_those_prompts_invalid_and_quote_the_server(
    faults: FaultServer, requests: list[ScoringRequest], clean: list[ScoredPrompt]
) -> None:
    backend = backend_for(faults, concurrency=3, max_reply_bytes=100_000)
    spoiled = {1: TRUNCATED, 2: HTML, 4: NO_CHOICES_REPLY, 5: NO_LOGPROBS, 7: huge(3_000_000)}
    faults.fail_prompts({requests[i].user: fault for i, fault in spoiled.items()})
    with pytest.warns(MalformedReplyWarning, match="5 of 8 replies"):
        results = backend.score(requests)
    options = backend.info().options
    backend.close()
    quoted = {
        1: r"malformed reply: the reply is not JSON \(.*\): '\{\"id\":",
        2: r"not JSON .*nginx is busy",
        4: r"has no choices: .*model overloaded",
        5: r"has no log-probabilities .*mode=generate.*'\{\"id\":",
        7: r"larger than max_reply_bytes=100000, starting '\{\"choices\": \[\], \"padding\"",
    }
    for index, result in enumerate(results):
        if index in spoiled:
            assert (result.outcome, result.label_probs, result.option_mass) == ("invalid", (), 0.0)
            assert pd.Series([result.generated]).str.contains(quoted[index]).all(), result
            assert len(result.generated) < 600  # a few hundred characters, not the whole body
        else:
            assert result.outcome == "answered"
            assert_same_probs([result], [clean[index]])
    assert options["malformed_replies"] == 5
    assert options["retries"] == 0


def test_a_whole_batch_of_malformed_replies_stops_the_run_and_saves_none_of_it(
    faults: FaultServer, requests: list[ScoringRequest]
) -> None:
    backend = backend_for(faults, concurrency=2)
    faults.fail_for(30, HTML)  # a proxy's error page instead of the API, for every request
    with pytest.raises(ScoringStopped, match=r"every one of the 4 replies .*nginx is busy") as stop:
        backend.score(requests[:4])
    backend.close()
    # saved as invalid they would be lost: a rerun skips prompts that have a result
    assert stop.value.completed == {}
    assert "run the same command again" in str(stop.value)


def test_generated_text_and_short_answers_quote_a_malformed_reply_too(
    faults: FaultServer, requests: list[ScoringRequest]
) -> None:
    backend = backend_for(faults, mode="generate", max_new_tokens=4, concurrency=2)
    faults.fail_prompts({requests[0].user: HTML})
    with pytest.warns(MalformedReplyWarning, match="1 of 2 replies"):
        sampled = backend.score(requests[:2])
    with pytest.warns(MalformedReplyWarning, match="1 of 2 replies"):
        written = backend.write_answers(requests[:2])
    backend.close()
    for first, second in (sampled, written):
        assert first.outcome == "invalid" and first.label_probs == ()
        assert first.generated.startswith("malformed reply: the reply is not JSON")
        assert "nginx is busy" in first.generated
        assert second.generated and "malformed" not in second.generated
    assert backend.info().options["malformed_replies"] == 2


def test_a_server_that_dies_mid_run_stops_with_what_arrived_and_a_rerun_completes_it(
    server: LlamaServer,
    prepared: Any,
    plan: pd.DataFrame,
    clean: list[ScoredPrompt],
    tmp_path: Path,
) -> None:
    dying = FaultServer(server.url, lifetime_s=60)
    backend = OpenAIBackend(
        base_url=dying.url, concurrency=2, chunk_size=4, retry_budget_s=1, backoff=0.05
    )
    run = RunDirectory.open(tmp_path / "run", build_manifest(prepared, backend), plan)
    dying.die_after(5)  # chunk 1 and a prompt of chunk 2: then connections are refused
    started = time.monotonic()
    with pytest.raises(ScoringStopped) as stopped:
        score_plan(run, plan, backend)
    backend.close()
    dying.close()
    assert time.monotonic() - started < 10
    message = str(stopped.value)
    assert "ConnectError" in message or "RemoteProtocolError" in message
    assert "retry_budget_s=SECONDS (now 1)" in message
    assert "run the same command again to resume" in message
    # the five answers that got through: chunk 1, and one of the two chunk-2 prompts in flight
    saved = set(run.results()["prompt_id"])
    assert len(saved) == 5
    assert set(plan["prompt_id"].iloc[:4]) < saved < set(plan["prompt_id"].iloc[:6])
    with FaultServer(server.url, lifetime_s=60) as restarted:
        resumed = OpenAIBackend(base_url=restarted.url, chunk_size=4)
        assert score_plan(run, plan, resumed) == 3
        resumed.close()
    responses = write_responses(run, plan)
    expected = {r.prompt_id: r.option_mass for r in clean}
    assert responses["prompt_id"].tolist() == plan["prompt_id"].tolist()
    assert responses["option_mass"].tolist() == pytest.approx(
        [expected[p] for p in plan["prompt_id"]], abs=1e-6
    )


def invalidated(responses: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The responses with the masked rows turned into invalid outcomes, as the backend writes them."""
    spoiled = responses.copy()
    spoiled["probs"] = [
        [] if bad else list(p) for bad, p in zip(mask, spoiled["probs"], strict=True)
    ]
    spoiled.loc[mask, ["outcome", "answer", "option_mass", "generated"]] = [
        "invalid",
        -1,
        0.0,
        "malformed reply: the reply has no choices",
    ]
    return spoiled


def test_analysis_runs_on_the_rest_when_prompts_and_a_whole_item_are_invalid() -> None:
    effects = PlantedEffects(culture=0.3, wording=0.1, noise=0.05)
    plan, responses = simulate_study(effects, n_items=3, n_proxies=3, n_paraphrases=2)
    item_of = plan.set_index("prompt_id")["item_id"]
    lost_item = responses["prompt_id"].map(item_of).eq(plan["item_id"].iloc[0]).to_numpy()
    scattered = np.arange(len(responses)) % 7 == 0
    mask = lost_item | scattered
    result = analyze(
        tidy_responses(plan, invalidated(responses, mask)), n_bootstrap=50, n_permutations=49
    )
    items = result.tables["item_stats"]
    assert sorted(items["item_id"]) == sorted(set(plan["item_id"]) - {plan["item_id"].iloc[0]})
    assert result.headline


def test_analysis_of_a_run_where_every_prompt_is_invalid_says_so() -> None:
    plan, responses = simulate_study(PlantedEffects(culture=0.3), n_items=2, n_proxies=2)
    every = np.ones(len(responses), dtype=bool)
    with pytest.raises(
        InputError, match=f"none of the {len(plan)} responses .*{len(plan)} invalid"
    ):
        analyze(tidy_responses(plan, invalidated(responses, every)), n_bootstrap=10)


def test_retries_during_scoring_are_counted_in_the_run_manifest(
    faults: FaultServer, prepared: Any, plan: pd.DataFrame, tmp_path: Path
) -> None:
    backend = backend_for(faults, concurrency=1, retry_budget_s=10)
    faults.fail_next(status(503), status(429))  # after the manifest is written, while scoring
    score_study(dataclasses.replace(prepared, plan=plan), backend, tmp_path / "run")
    backend.close()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["backend"]["options"]["retries"] == 2
    assert manifest["backend"]["options"]["retry_causes"] == {"HTTP 503": 1, "HTTP 429": 1}


def test_prompts_with_malformed_replies_are_asked_again_when_the_healed_server_resumes(
    faults: FaultServer,
    prepared: Any,
    plan: pd.DataFrame,
    requests: list[ScoringRequest],
    clean: list[ScoredPrompt],
    tmp_path: Path,
) -> None:
    backend = backend_for(faults, concurrency=2, chunk_size=4)
    run = RunDirectory.open(tmp_path / "run", build_manifest(prepared, backend), plan)
    spoiled = {requests[i].prompt_id for i in (1, 2, 5)}
    faults.fail_prompts(
        {requests[i].user: fault for i, fault in ((1, HTML), (2, TRUNCATED), (5, NO_CHOICES_REPLY))}
    )
    with pytest.warns(MalformedReplyWarning, match="asked again when the same command runs again"):
        assert score_plan(run, plan, backend) == 8
    first = write_responses(run, plan).set_index("prompt_id")
    assert set(first.index[first["failure"] == "server"]) == spoiled
    assert (first.loc[list(spoiled), "outcome"] == "invalid").all()

    with faults.lock:
        faults.by_prompt.clear()  # the server heals
    assert score_plan(run, plan, backend) == 3  # those three, and nothing else
    backend.close()
    healed = write_responses(run, plan)
    assert (healed["outcome"] == "answered").all() and (healed["failure"] == "").all()
    expected = {r.prompt_id: r.label_probs for r in clean}
    np.testing.assert_allclose(
        np.stack(healed["probs"].to_numpy()),
        [
            _canonical(expected[prompt], shown)
            for prompt, shown in zip(plan["prompt_id"], plan["display_to_canonical"], strict=True)
        ],
        atol=1e-6,
    )


def _canonical(display_probs: tuple[float, ...], display_to_canonical: Any) -> np.ndarray:
    """A clean result's probabilities in canonical option order, as the run folder keeps them."""
    probs = np.zeros(len(display_probs))
    probs[list(display_to_canonical)] = display_probs
    return probs
