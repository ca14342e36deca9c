"""Exact option scores and constrained answers through a real llama.cpp server.

The server (``llama_cpp.server`` on the embedded GGUF, started once per session with
``--logits_all true``) reads a prompt's top-k tokens; asked for only the top 2, most labels fall
outside them, and the backend must then score them exactly. The expected numbers are computed
here by hand, independently of the backend: the prompt is rendered by transformers' chat template
(not the backend's renderer), sent to ``/v1/completions`` with ``echo`` plus each label, and the
label token's echoed log-probability is read off the reply; and each label is forced by a grammar
of its own, its tokens' log-probabilities read off the chat completion. Each exact method must give
its numbers to 1e-6; the two agree to llama.cpp's own batch arithmetic (a few percent). llama.cpp
evaluates only the part of a prompt its cache does not hold, and one prompt evaluated in one batch
or in two gives numbers up to 3% apart; so the numbers by hand are read right after the backend's
requests for the same prompt, on the same cached prompt.

Faults: a proxy (``tests/fault_server.py``) in front of the server answers 404 on
``/v1/completions`` (a chat-only API), or drops ``grammar`` and ``guided_choice`` (a server that
does not know them).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.openai import OpenAIBackend
from culture_probe.planning import PlanFilter, prepare
from culture_probe.runner import score_study
from culture_probe.store import RunDirectory
from fault_server import FaultServer, LlamaServer

QUESTION = ScoringRequest(
    prompt_id="capital",
    system="",
    user=(
        "Which city is the capital of France?\nA. Paris\nB. Rome\nC. Berlin\n"
        "Answer with the letter of one option only."
    ),
    option_labels=("A", "B", "C"),
    seed=3,
    options=("Paris", "Rome", "Berlin"),
)
#: with the top 2 tokens only, at least one of the three labels is outside them
TOP_K = 2


def echoed_by_hand(llama_server: LlamaServer, hf_backend: Any) -> dict[str, float | None]:
    """Each spelling's log-probability after the prompt, read by hand off the server's echo.

    None where the spelling is no token of its own after the prompt. Called right after the
    backend's requests for the same prompt: llama.cpp then evaluates only what follows the prompt,
    on the same cached prompt, and gives the same numbers (see the module docstring).
    """
    text = hf_backend.tokenizer.apply_chat_template(
        QUESTION.messages(), tokenize=False, add_generation_prompt=True
    )
    table: dict[str, float | None] = {}
    for label in QUESTION.option_labels:
        for spelling in (label, " " + label):
            reply = httpx.post(
                f"{llama_server.url}/completions",
                json={"prompt": text + spelling, "echo": True, "logprobs": 1, "max_tokens": 1},
                timeout=120,
            ).json()
            logprobs = reply["choices"][0]["logprobs"]
            # the last token is the one the server wrote; the one before it ends the prompt
            token, value = logprobs["tokens"][-2], logprobs["token_logprobs"][-2]
            table[spelling] = value if token == spelling else None
    return table


def forced_by_hand(llama_server: LlamaServer) -> dict[str, float | None]:
    """Each spelling's log-probability read by hand off a chat completion forced to write it.

    None where the first token written is not the label (a space, then the label). Called right
    after the backend's requests, as :func:`echoed_by_hand`.
    """
    table: dict[str, float | None] = {}
    for label in QUESTION.option_labels:
        for spelling in (label, " " + label):
            reply = httpx.post(
                f"{llama_server.url}/chat/completions",
                json={
                    "messages": QUESTION.messages(),
                    "grammar": f'root ::= "{spelling}"',
                    "max_tokens": 4,
                    "temperature": 0,
                    "logprobs": True,
                    "top_logprobs": 1,
                },
                timeout=120,
            ).json()
            tokens = reply["choices"][0]["logprobs"]["content"]
            assert "".join(t["token"] for t in tokens) == spelling
            table[spelling] = (
                sum(t["logprob"] for t in tokens) if tokens[0]["token"].strip() else None
            )
    return table


def by_hand(echoed: dict[str, float | None]) -> list[float]:
    masses = [
        sum(math.exp(v) for s in (label, " " + label) if (v := echoed[s]) is not None)
        for label in QUESTION.option_labels
    ]
    return [mass / sum(masses) for mass in masses]


def backend_at(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(base_url=url, top_logprobs=TOP_K, backoff=0.01, **options)


@pytest.mark.parametrize("method", ["prompt_logprobs", "grammar"])
def test_labels_outside_the_top_k_get_the_probability_the_server_gives_their_tokens(
    llama_server: LlamaServer, hf_backend: Any, method: str
) -> None:
    truncated = backend_at(llama_server.url, exact_rescore=False).score([QUESTION])[0]
    assert 0.0 in truncated.label_probs  # without rescoring a label outside the top 2 reads 0
    backend = backend_at(llama_server.url, rescore_with=method)
    result = backend.score([QUESTION])[0]
    options = backend.info().options
    backend.close()
    assert result.outcome == "answered"
    assert min(result.label_probs) > 0.0
    by_echo = echoed_by_hand(llama_server, hf_backend)
    forced = forced_by_hand(llama_server)
    expected = by_hand(by_echo if method == "prompt_logprobs" else forced)
    np.testing.assert_allclose(result.label_probs, expected, rtol=1e-6)
    assert (options["rescore_method"], options["rescored_prompts"]) == (method, 1)
    # the two ways agree up to llama.cpp's own arithmetic: it evaluates only what its cache
    # lacks, and one prompt evaluated in one batch or in two moves by up to 3% (measured)
    np.testing.assert_allclose(by_hand(by_echo), by_hand(forced), rtol=0.05)
    # the same model computed in float32 by transformers: close, not equal (llama.cpp quantizes
    # the activations to 8 bits); measured 0.02 bits
    from_hf = hf_backend.score([QUESTION])[0].label_probs
    distance = jensenshannon(result.label_probs, from_hf, base=2)
    print(f"{method}: {result.label_probs} vs hf {from_hf}: JS {distance:.4f} bits")
    assert distance < 0.06


def test_the_manifest_counts_the_prompts_rescored_and_their_time(
    llama_server: LlamaServer, repo: Path, tmp_path: Path
) -> None:
    full = prepare(repo / "taxonomy" / "values.yaml", PlanFilter(("family_importance",), ("JP",)))
    prepared = dataclasses.replace(full, plan=full.plan.iloc[:3].reset_index(drop=True))
    # the top token alone: every prompt has a label outside it
    backend = OpenAIBackend(base_url=llama_server.url, top_logprobs=1, rescore_with="grammar")
    responses = score_study(prepared, backend, tmp_path / "run")
    backend.close()
    options = RunDirectory.existing(tmp_path / "run").manifest()["backend"]["options"]
    assert options["exact_rescore"] is True
    assert options["rescored_prompts"] == 3
    assert options["rescore_failed"] == 0
    assert options["rescore_s"] > 0
    assert options["rescore_method"] == "grammar"
    assert (responses["outcome"] == "answered").all()
    assert all(min(probs) > 0 for probs in responses["probs"])


def test_a_server_that_ignores_grammars_falls_back_to_prompt_log_probabilities(
    llama_server: LlamaServer, hf_backend: Any
) -> None:
    with FaultServer(llama_server.url) as proxy:
        proxy.ignore_fields("grammar", "guided_choice")
        backend = backend_at(proxy.url)
        result = backend.score([QUESTION])[0]
        options = backend.info().options
        backend.close()
    assert options["rescore_method"] == "prompt_logprobs"
    expected = by_hand(echoed_by_hand(llama_server, hf_backend))
    np.testing.assert_allclose(result.label_probs, expected, rtol=1e-6)


def test_a_server_without_prompt_log_probabilities_scores_with_a_grammar(
    llama_server: LlamaServer,
) -> None:
    with FaultServer(llama_server.url) as proxy:
        proxy.refuse_path("/v1/completions")
        backend = backend_at(proxy.url, rescore_with="prompt_logprobs")
        refused = backend.score([QUESTION])[0]
        backend.close()
        backend = backend_at(proxy.url)
        result = backend.score([QUESTION])[0]
        options = backend.info().options
        backend.close()
    assert refused.outcome == "invalid" and "HTTP 404" in refused.generated
    assert options["rescore_method"] == "grammar"
    np.testing.assert_allclose(result.label_probs, by_hand(forced_by_hand(llama_server)), rtol=1e-6)


def test_a_server_with_neither_makes_the_prompt_invalid_and_says_why(
    llama_server: LlamaServer,
) -> None:
    with FaultServer(llama_server.url) as proxy:
        proxy.refuse_path("/v1/completions")
        proxy.ignore_fields("grammar", "guided_choice")
        backend = backend_at(proxy.url)
        result = backend.score([QUESTION])[0]
        options = backend.info().options
        backend.close()
    assert (result.outcome, result.label_probs) == ("invalid", ())
    assert "outside the server's top 2 log-probabilities" in result.generated
    assert "prompt_logprobs: " in result.generated and "HTTP 404" in result.generated
    assert "grammar: the server ignored the constraint" in result.generated
    assert options["rescore_unavailable"] in result.generated
    assert options["rescore_failed"] == 1


def test_without_exact_rescoring_the_top_k_limits_the_options(llama_server: LlamaServer) -> None:
    plain = backend_at(llama_server.url, exact_rescore=False)
    exact = backend_at(llama_server.url)
    assert (plain.max_options(), exact.max_options()) == (TOP_K, None)
    assert plain.info().key()["exact_rescore"] is False
    assert exact.info().key()["exact_rescore"] is True
    plain.close()
    exact.close()


def test_a_constrained_answer_is_a_label_drawn_under_the_seed_with_the_exact_distribution(
    llama_server: LlamaServer,
) -> None:
    backend = backend_at(llama_server.url)
    first, again = backend.score_constrained([QUESTION, QUESTION])
    other_seeds = backend.score_constrained(
        [dataclasses.replace(QUESTION, seed=seed) for seed in range(8)]
    )
    backend.close()
    forced = forced_by_hand(llama_server)
    assert first.outcome == "answered"
    assert first.generated.strip() == QUESTION.option_labels[first.choice]
    assert again.choice == first.choice  # the same seed draws the same label
    # the labels' continuations ("A" and " A"), summed per label and renormalised
    np.testing.assert_allclose(first.label_probs, by_hand(forced), rtol=1e-6)
    mass = sum(math.exp(value) for value in forced.values() if value is not None)
    assert first.option_mass == pytest.approx(mass, rel=1e-6)
    assert {r.generated.strip() for r in other_seeds} <= set(QUESTION.option_labels)


def test_a_server_that_ignores_the_constraint_gives_an_invalid_constrained_answer(
    llama_server: LlamaServer,
) -> None:
    with FaultServer(llama_server.url) as proxy:
        proxy.ignore_fields("grammar", "guided_choice")
        backend = backend_at(proxy.url, max_new_tokens=8)
        result = backend.score_constrained([QUESTION])[0]
        backend.close()
    # unconstrained, the model writes more than a label ("A. Paris")
    assert result.outcome == "invalid"
    assert "ignored the constraint" in result.generated
