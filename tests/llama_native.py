"""llama.cpp's own HTTP server (``llama-server``), for the tests that send token ids as the prompt.

llama-cpp-python's ``llama_cpp.server`` (the ``llama_server`` fixture) takes text prompts only;
``llama-server``, the server llama.cpp itself builds, takes a list of token ids as the ``prompt``
of ``/v1/completions``. It is found at ``$LLAMA_SERVER`` or as ``llama-server`` on the ``PATH``
(build it from llama.cpp's source: ``cmake -B build && cmake --build build --target llama-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np

from fault_server import free_port


def llama_server_binary() -> str | None:
    """The ``llama-server`` program: ``$LLAMA_SERVER``, else the one on the ``PATH``."""
    configured = os.environ.get("LLAMA_SERVER")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("llama-server")


def llama_server_missing() -> str:
    """Why the tests that need ``llama-server`` cannot run here; empty where they can."""
    if llama_server_binary():
        return ""
    return "no llama-server program ($LLAMA_SERVER or llama-server on the PATH)"


class NativeLlamaServer:
    """``llama-server`` on a loopback port, serving one GGUF file with one thread."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> NativeLlamaServer:
        binary = llama_server_binary()
        assert binary, llama_server_missing()
        command = [
            binary, "--model", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
            "--threads", "1", "--ctx-size", "2048", "--parallel", "1", "--no-webui",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "llama-server exited while starting"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("llama-server did not start within 120 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def float32_gguf(source: Path, target: Path) -> Path:
    """A copy of a GGUF file with every tensor dequantized to float32 (``general.file_type`` 0).

    Dequantized by the ``gguf`` package, as transformers dequantizes the file for the ``hf``
    backend: the copy holds the weights the ``hf`` float32 run computes with.
    """
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(source)
    architecture = reader.fields["general.architecture"].contents()
    partial = target.with_suffix(".partial")
    writer = GGUFWriter(partial, arch=architecture)
    for entry in reader.fields.values():
        if entry.name == "general.architecture" or entry.name.startswith("GGUF."):
            continue
        kind = entry.types[0]
        value = 0 if entry.name == "general.file_type" else entry.contents()
        sub = entry.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(entry.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(target)
    return target
