"""``culture-probe serve``: llama.cpp's server set up for the ``openai`` backend.

The server is started as a user starts it (the ``culture-probe`` command, a real port) and asked
for a completion of token ids, as ``prompt_tokens=local`` asks it. The float32
copy is checked on a small GGUF file written here, tensor by tensor against the ``gguf`` package's
own dequantization.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from culture_probe.serve import cached_float32_copy, server_arguments
from fault_server import free_port

CLI = [sys.executable, "-m", "culture_probe.cli"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``culture-probe serve`` on the embedded model; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with log.open("wb") as sink:  # a file, not a pipe: llama.cpp writes pages while it loads
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--threads", "1", "--context", "512"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "culture-probe serve did not start in 120 s"
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_serve_takes_token_ids_as_the_prompt(served: str) -> None:
    ids = [1, 9690, 198, 2683, 314, 253]
    reply = httpx.post(
        f"{served}/completions",
        json={"prompt": ids, "max_tokens": 2, "logprobs": 3, "temperature": 0},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["prompt_tokens"] == len(ids)
    logprobs = body["choices"][0]["logprobs"]
    assert len(logprobs["token_logprobs"]) == 2 and len(logprobs["top_logprobs"][0]) == 3


@pytest.mark.slow
def test_serve_still_takes_text(served: str) -> None:
    reply = httpx.post(
        f"{served}/completions", json={"prompt": "The capital of France is", "max_tokens": 2}
    )
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"]


def test_serve_refuses_a_model_folder_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    result = subprocess.run([*CLI, "serve", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "serve takes a .gguf file or 'embedded'" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_arguments_turn_on_prompt_logprobs_and_pass_the_rest_on() -> None:
    arguments = server_arguments(Path("m.gguf"), "0.0.0.0", 9000, 3, 2048, ["--n_gpu_layers", "-1"])
    assert arguments == [
        "--model", "m.gguf", "--host", "0.0.0.0", "--port", "9000", "--logits_all", "true",
        "--n_ctx", "2048", "--n_threads", "3", "--n_gpu_layers", "-1",
    ]  # fmt: skip


def small_quantized_gguf(path: Path) -> tuple[Path, np.ndarray]:
    """A GGUF file with one Q8_0 tensor (and a float32 one), and the Q8_0 tensor's values."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    rng = np.random.default_rng(0)
    weights = rng.normal(0, 1, (4, 64)).astype(np.float32)
    writer = GGUFWriter(path, arch="llama")
    writer.add_file_type(7)  # mostly Q8_0
    writer.add_tensor(
        "blk.0.attn_q.weight",
        quantize(weights, GGMLQuantizationType.Q8_0),
        raw_dtype=GGMLQuantizationType.Q8_0,
    )
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, weights


def test_float32_copy_is_the_dequantized_file_and_is_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    monkeypatch.setenv("CULTURE_PROBE_CACHE", str(tmp_path / "cache"))
    source, weights = small_quantized_gguf(tmp_path / "small.gguf")
    copy = cached_float32_copy(source)
    original = {t.name: t for t in GGUFReader(source).tensors}
    reader = GGUFReader(copy)
    assert int(reader.fields["general.file_type"].contents()) == 0
    for tensor in reader.tensors:
        assert tensor.tensor_type == GGMLQuantizationType.F32
        expected = dequantize(original[tensor.name].data, original[tensor.name].tensor_type)
        np.testing.assert_array_equal(np.asarray(tensor.data).reshape(expected.shape), expected)
    # Q8_0 keeps the weights to within half a step of their block's scale
    dequantized = np.asarray(reader.tensors[0].data).reshape(weights.shape)
    assert np.abs(dequantized - weights).max() < np.abs(weights).max() / 127
    made = copy.stat().st_mtime_ns
    assert cached_float32_copy(source) == copy and copy.stat().st_mtime_ns == made
    assert not list(copy.parent.glob("*.partial"))
