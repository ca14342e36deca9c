"""Run identity: model folders by content, the kernel build, process-wide state left as found."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from culture_probe.backends import create_backend
from culture_probe.backends.hf import HFBackend
from culture_probe.models import converted_copy, folder_hash, resolve_model

#: what the tiny models take from the embedded one: its tokenizer and chat template
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_llama(folder: Path, seed: int) -> Path:
    """A one-layer Llama with the embedded model's tokenizer, its weights drawn from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    embedded = converted_copy(resolve_model("embedded"))
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (embedded / name).is_file():
            shutil.copy(embedded / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two ``checkpoint-500`` folders of one config and different seeds, and a copy of the first."""
    root = tmp_path_factory.mktemp("runs")
    first = tiny_llama(root / "run-a" / "checkpoint-500", seed=1)
    second = tiny_llama(root / "run-b" / "checkpoint-500", seed=2)
    copy = root / "run-c" / "checkpoint-500"
    shutil.copytree(first, copy)
    return first, second, copy


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((file.name, file.stat().st_size) for file in folder.iterdir())


def run_key(repo: Path, model: Path) -> str:
    from culture_probe.planning import PlanFilter, prepare
    from culture_probe.scoring import build_manifest

    prepared = prepare(repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",)))
    backend = create_backend("hf", model=str(model), dtype="float32")
    try:
        return str(build_manifest(prepared, backend)["run_key"])
    finally:
        backend.close()


def test_folders_of_equal_names_and_sizes_with_other_weights_get_other_run_keys(
    repo: Path, checkpoints: tuple[Path, Path, Path]
) -> None:
    first, second, copy = checkpoints
    assert first.name == second.name and listing(first) == listing(second)

    keys = [run_key(repo, folder) for folder in (first, second, copy)]

    assert keys[0] != keys[1]
    assert keys[0] == keys[2]  # the same bytes elsewhere: the same run


def test_a_folder_is_hashed_once_per_file_state(
    checkpoints: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, _ = checkpoints
    expected = folder_hash(first)
    reads: list[Path] = []
    original = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.parent == first:
            reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    assert folder_hash(first) == expected
    assert reads == []  # remembered by path, size and modification time
    weights = first / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1))
    assert folder_hash(first) == expected  # same bytes, re-read once
    assert reads == [weights]


def test_the_kernel_build_is_in_the_backend_info_and_the_key(hf_backend: HFBackend) -> None:
    info = hf_backend.info()

    assert info.options["kernel"] == "none"  # float32: PyTorch's own products
    assert info.key()["kernel"] == "none"


def test_a_backend_leaves_the_process_as_it_found_it_once_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers.utils import logging as transformers_logging

    monkeypatch.delenv("MKL_DISABLE_FAST_MM", raising=False)
    threads = torch.get_num_threads()
    bars_on = transformers_logging.is_progress_bar_enabled()  # type: ignore[no-untyped-call]
    wanted = 1 if threads != 1 else 2

    backend = HFBackend(model="embedded", dtype="float32", threads=wanted)
    assert torch.get_num_threads() == wanted  # for the backend's life
    backend.close()

    assert torch.get_num_threads() == threads
    assert transformers_logging.is_progress_bar_enabled() == bars_on  # type: ignore[no-untyped-call]
    assert "MKL_DISABLE_FAST_MM" not in os.environ  # only tune_process sets it
