"""Prompts sent to a server as the model's own token ids (``prompt_tokens=local``).

llama.cpp's tokenizer reads the blank line before "1. Very important" as one token "\\n\\n"; the
model's own tokenizer (transformers', the ``hf`` backend's) as "\\n", "\\n". With
``prompt_tokens=local`` the ``openai`` backend renders and tokenizes the chat itself and sends the
ids to ``/v1/completions``. The server here is llama-cpp-python's ``llama_cpp.server`` with its
request declaration widened to take token ids (``culture_probe.serve``; its ``Llama``
takes them as they are); the expected ids come from the ``hf`` backend's tokenizer, which is
loaded another way (the cached safetensors copy, not the GGUF file).

On a float32 copy of the embedded GGUF file (dequantized by the ``gguf`` package, as transformers
dequantizes it for ``hf``) the server computes with the weights of the ``hf`` float32 run and
reads the same tokens, so the option distribution must match it up to float32 arithmetic summed
in another order (ggml's against torch's): over the 336 prompts of the values study (``--proxies
JP``) at most 0.0014 bits of Jensen-Shannon distance, mean 0.0005 (benchmarks/RESULTS.md, "Exact
option scores through llama.cpp's server"). :data:`FLOAT32_TOLERANCE_BITS` allows twice the
largest; the server's own tokens on the same float32 copy give up to 0.052 bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from culture_probe.backends._server_exact import (
    Unavailable,
    forced_continuation_logprob,
    token_entries,
)
from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.openai import OpenAIBackend
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.models import embedded_gguf
from culture_probe.serve import float32_gguf
from fault_server import LlamaServer

TOKEN_SERVER = "culture_probe.serve"
#: float32 on both sides, summed in another order (see the module docstring)
FLOAT32_TOLERANCE_BITS = 0.003

NUMBERED = ScoringRequest(
    prompt_id="family",
    system="Imagine you are a person from Japan.",
    user=(
        "How important is family in your life?\n\n1. Very important\n2. Rather important\n"
        "3. Not very important\n4. Not at all important\n\n"
        "Answer with the number of one option only."
    ),
    option_labels=("1", "2", "3", "4"),
    seed=5,
)


@pytest.fixture(scope="module")
def token_server() -> Iterator[LlamaServer]:
    """The embedded Q4_1 file behind a server that takes token ids."""
    server = LlamaServer(module=TOKEN_SERVER).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def float32_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A float32 copy of the embedded file behind a server that takes token ids."""
    copy = float32_gguf(embedded_gguf(), tmp_path_factory.mktemp("f32") / "smollm2-f32.gguf")
    server = LlamaServer(model=copy, module=TOKEN_SERVER).start()
    yield server
    server.kill()


def local_backend(server: LlamaServer, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(
        base_url=server.url, model=str(server.model), prompt_tokens="local", **options
    )


def sent_bodies(backend: OpenAIBackend) -> list[dict[str, Any]]:
    """The JSON bodies the backend sends from now on, as they leave it."""
    import json

    bodies: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        bodies.append(json.loads(request.content))

    backend.client.event_hooks["request"] = [record]
    return bodies


def test_the_ids_sent_are_the_model_tokenization_not_the_servers(
    token_server: LlamaServer, hf_backend: Any
) -> None:
    backend = local_backend(token_server, top_logprobs=2)
    bodies = sent_bodies(backend)
    try:
        [scored] = backend.score([NUMBERED])
    finally:
        backend.close()
    text = hf_backend.prompt_text(NUMBERED)
    expected = hf_backend.tokenizer.encode(text, add_special_tokens=False)
    assert scored.outcome == "answered" and backend.info().options["rescored_prompts"] == 1
    assert bodies and all(body["prompt"] == expected for body in bodies)
    # the server's own tokenizer reads the same text otherwise: one "\n\n" before "1."
    theirs = httpx.post(
        token_server.url.removesuffix("/v1") + "/extras/tokenize", json={"input": text}
    ).json()["tokens"]
    newline, blank_line, one = hf_backend.tokenizer.convert_tokens_to_ids(["Ċ", "ĊĊ", "1"])
    assert blank_line in theirs and blank_line not in expected
    assert any(expected[i : i + 3] == [newline, newline, one] for i in range(len(expected)))


def test_on_the_float32_copy_the_distribution_is_the_hf_float32_one(
    float32_token_server: LlamaServer, hf_backend: Any
) -> None:
    # top 2 only: labels outside it are scored exactly, on the same ids
    backend = local_backend(float32_token_server, top_logprobs=2)
    try:
        [served] = backend.score([NUMBERED])
        rescored = backend.info().options["rescored_prompts"]
    finally:
        backend.close()
    [reference] = hf_backend.score([NUMBERED])
    distance = jensenshannon(served.label_probs, reference.label_probs, base=2)
    assert rescored == 1
    assert distance <= FLOAT32_TOLERANCE_BITS
    assert math.isclose(served.option_mass, reference.option_mass, rel_tol=0.01)


def test_prompt_tokens_takes_server_or_local_and_names_the_option() -> None:
    with pytest.raises(InputError, match=r"prompt_tokens got 'locale'; did you mean 'local'"):
        OpenAIBackend(base_url="http://127.0.0.1:9/v1", prompt_tokens="locale")
    with pytest.raises(InputError, match=r"--option tokenizer is read only with .*=local"):
        OpenAIBackend(base_url="http://127.0.0.1:9/v1", tokenizer="embedded")


def test_a_tokenizer_that_is_not_there_is_named(token_server: LlamaServer) -> None:
    with pytest.raises(InputError, match=r"--option tokenizer: .*missing\.gguf.*model not found"):
        local_backend(token_server, tokenizer="/nowhere/missing.gguf")


def test_a_server_that_takes_text_only_is_told_apart(llama_server: LlamaServer) -> None:
    with pytest.raises(CultureProbeError, match=r"refuses token ids as the prompt"):
        local_backend(llama_server, tokenizer="embedded")


def test_legacy_completion_replies_read_as_chat_ones() -> None:
    legacy = {
        "text": "If",
        "logprobs": {
            "tokens": ["I", "f"],
            "token_logprobs": [-1.0, -2.0],
            "top_logprobs": [{"I": -1.0}, {"f": -2.0}],
        },
    }
    entries = token_entries(legacy)
    assert entries is not None
    assert [e["token"] for e in entries] == ["I", "f"]
    assert entries[0]["top_logprobs"] == [{"token": "I", "logprob": -1.0}]
    reply = {"choices": [legacy]}
    assert forced_continuation_logprob(reply, "If") == pytest.approx(-3.0)
    # the model's tokenizer writes "If" as one token: the sum over "I", "f" is not its score
    with pytest.raises(Unavailable, match=r"as the tokens \['I', 'f'\]"):
        forced_continuation_logprob(reply, "If", [(1106, "If")])
    assert np.isfinite(forced_continuation_logprob(reply, "If", [(57, "I"), (74, "f")]))
