"""A GGUF model behind llama.cpp's OpenAI-compatible server, as the ``openai`` backend reads it best
(``culture-probe serve``; docs/openai-backend.md, "Serving a GGUF file").

The server is llama-cpp-python's ``llama_cpp.server``, with two settings that the ``openai``
backend relies on and that it does not default to:

- ``--logits_all true``: the log-probabilities of the prompt's own tokens, which exact rescoring
  reads (``echo`` with ``logprobs``) for labels outside the server's top 20;
- token ids as the ``prompt`` of ``/v1/completions`` (``--option prompt_tokens=local``).
  llama-cpp-python declares the prompt as text (``str | list[str]``) and answers a list of token
  ids with HTTP 500, although the ``Llama`` object under it takes token ids as they are
  (``Llama.create_completion(prompt=[...])``, no BOS added); the OpenAI legacy completions API,
  vLLM and llama.cpp's own ``llama-server`` take them. :func:`widen_prompt` widens only that
  declaration; the model, its arithmetic, grammars, log-probabilities and the rest of the server
  are llama-cpp-python's own.

``--float32`` serves a float32 copy of the file, every tensor dequantized by the ``gguf`` package
as transformers dequantizes it for the ``hf`` backend: the weights the ``hf`` float32 run computes
with, so that the two runs differ only by the order of float32 sums (at most 0.0014 bits of
Jensen-Shannon distance on the values study, benchmarks/RESULTS.md).

``python -m culture_probe.serve ARGS`` starts the server with the arguments of ``python -m
llama_cpp.server`` as they are (what the tests and benchmarks launch).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from culture_probe.errors import CultureProbeError
from culture_probe.models import cache_dir, file_hash

#: what ``culture-probe serve`` needs beyond the project's own dependencies
SERVER_PACKAGE = "llama-cpp-python[server]"


def widen_prompt() -> None:
    """Declare ``prompt`` as text, texts, or one list of token ids, before the app is built."""
    import llama_cpp.server.types as types
    from pydantic import Field, field_validator

    class TokenPromptRequest(types.CreateCompletionRequest):
        # the app hands ``prompt[0]`` of a list to ``Llama``: one list of ids is kept in a list
        prompt: str | list[str] | list[list[int]] = Field(default="")  # type: ignore[assignment]

        @field_validator("prompt", mode="before")
        @classmethod
        def token_ids_as_one_prompt(cls, value: Any) -> Any:
            if isinstance(value, list) and value and all(type(v) is int for v in value):
                return [value]
            return value

    types.CreateCompletionRequest = TokenPromptRequest  # type: ignore[misc]


def float32_gguf(source: Path, target: Path) -> Path:
    """A copy of a GGUF file with every tensor dequantized to float32 (``general.file_type`` 0).

    Written beside ``target`` and renamed into place, so that a stopped copy is never read as a
    whole one.
    """
    import numpy as np
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


def cached_float32_copy(source: Path) -> Path:
    """The float32 copy of ``source`` in the cache (``$CULTURE_PROBE_CACHE/models``), made once
    and found again by the content of ``source``."""
    folder = cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.stem}-{file_hash(source)[:12]}-f32.gguf"
    return target if target.exists() else float32_gguf(source, target)


def server_arguments(
    model: Path, host: str, port: int, threads: int | None, context: int, extra: list[str]
) -> list[str]:
    """The arguments of ``python -m llama_cpp.server`` that serve ``model`` for culture-probe."""
    arguments = [
        "--model", str(model), "--host", host, "--port", str(port),
        "--logits_all", "true", "--n_ctx", str(context),
    ]  # fmt: skip
    if threads is not None:
        arguments += ["--n_threads", str(threads)]
    return [*arguments, *extra]


def run_server(arguments: list[str]) -> None:
    """Start llama-cpp-python's server, with token-id prompts, on ``arguments``; returns when it
    stops.

    Raises:
        CultureProbeError: llama-cpp-python's server is not installed.
    """
    try:
        # before the app is imported: it binds the request declaration when its module loads
        widen_prompt()
        from llama_cpp.server.__main__ import main as server_main
    except ImportError as missing:
        raise CultureProbeError(
            f"serving needs {SERVER_PACKAGE} ({missing}): run "
            f"`pip install '{SERVER_PACKAGE}'` (it compiles llama.cpp: several minutes)"
        ) from missing
    saved = sys.argv
    sys.argv = ["llama_cpp.server", *arguments]
    try:
        server_main()  # type: ignore[no-untyped-call]
    finally:
        sys.argv = saved


if __name__ == "__main__":
    run_server(sys.argv[1:])
