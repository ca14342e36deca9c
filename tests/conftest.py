"""Shared fixtures: the public reference data and one embedded model per test session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from culture_probe.events import RunEvents

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a model hub: everything they load is on disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (public datasets; never copied into the project)."""
    assert SHARED_DATA.is_dir(), f"expected the shared reference data at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture
def without_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``mixed`` as on a CPU where the split kernel cannot run: MKL computes the products."""
    from culture_probe.engine import split_kernel

    monkeypatch.setenv("CULTURE_PROBE_KERNEL", "off")
    split_kernel._load.cache_clear()
    yield
    monkeypatch.delenv("CULTURE_PROBE_KERNEL")
    split_kernel._load.cache_clear()


def kernel_builds() -> list[str]:
    """The split kernel's builds this CPU has the instructions for: ``amx``, ``avx512``, both."""
    from culture_probe.engine.split_kernel import cpu_builds

    return cpu_builds()


@pytest.fixture(params=kernel_builds() or ["none"])
def kernel(request: pytest.FixtureRequest) -> Any:
    """Each build of the split kernel this CPU runs, in turn; the test skips where none does."""
    from culture_probe.engine.split_kernel import cpu_feature_flags, load_build

    if request.param == "none":
        pytest.skip("this CPU has neither AMX tiles nor AVX-512's bfloat16 and VNNI instructions")
    found, reason = load_build(request.param, cpu_feature_flags())
    assert found is not None, reason
    return found


@pytest.fixture(scope="session")
def hf_backend() -> Iterator[object]:
    """The embedded SmolLM2-135M-Instruct behind the ``hf`` backend, loaded once per session.

    float32 on every machine, so that the reference computations and tolerances do not depend on
    whether the split kernel runs (``auto`` would pick ``mixed`` where it does).
    """
    from culture_probe.backends import create_backend

    backend = create_backend("hf", model="embedded", dtype="float32")
    yield backend
    backend.close()


#: BLEnD's "What is a popular food to go with beer in ...?"
BLEND_QUESTION = "Al-en-02"


@pytest.fixture(scope="session")
def blend_study(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """BLEnD's beer-food question about the UK and South Korea: 3 prompts (en, en, ko)."""
    from culture_probe.importers import RegionResolver, import_blend, write_study
    from culture_probe.taxonomy import load_taxonomy

    taxonomy_path = REPO / "taxonomy" / "taxonomy.yaml"
    taxonomy = load_taxonomy(taxonomy_path)
    imported = import_blend(
        shared_data / "blend",
        RegionResolver.from_taxonomy(taxonomy),
        taxonomy,
        countries=["GB", "KR"],
        questions=[BLEND_QUESTION],
    )
    return write_study(imported, tmp_path_factory.mktemp("blend") / "study", taxonomy_path)


class RecordingEvents(RunEvents):
    """Run events that remember what the pipeline reported: for tests that check a resume.

    ``resumed`` is ``(total, already scored)`` as scoring began; ``advanced`` counts the prompts
    scored in this call; ``set_aside`` lists the chunks repaired.
    """

    def __init__(self) -> None:
        self.resumed: tuple[int, int] | None = None
        self.advanced = 0
        self.set_aside: list[Path] = []

    def repaired(self, set_aside: list[Path]) -> None:
        self.set_aside.extend(set_aside)

    @contextmanager
    def scoring(self, total: int, already: int) -> Iterator[Callable[[int], None]]:
        self.resumed = (total, already)

        def advance(count: int) -> None:
            self.advanced += count

        yield advance


@pytest.fixture
def recording_events() -> type[RecordingEvents]:
    """The :class:`RecordingEvents` class, for tests in other files to make instances of."""
    return RecordingEvents


@pytest.fixture
def scored_blend_run(blend_study: Path, tmp_path: Path) -> Callable[[Any], Any]:
    """Scores the BLEnD study through the pipeline, with a backend set to greedy 12-token answers,
    then runs the same call again, which must find nothing left (a resumed run).

    Returns the pipeline's :class:`~culture_probe.runner.RunResult` (scored, not analysed).
    """
    from culture_probe.runner import RunSettings, run_study

    def score_twice(backend: Any) -> Any:
        settings = RunSettings(study=blend_study, out=tmp_path / "run")
        first = RecordingEvents()
        run_study(settings, backend=backend, analyse=False, events=first)
        assert first.advanced == 3
        manifest = json.loads((settings.out / "manifest.json").read_text())  # type: ignore[operator]
        assert manifest["short_answers"]["decoding"] == {"temperature": 0.0, "max_tokens": 12}
        again = RecordingEvents()
        result = run_study(settings, backend=backend, analyse=False, events=again)
        assert again.resumed == (3, 3) and again.advanced == 0  # resumed: nothing left
        return result

    return score_twice


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless system Chromium for the module (see ``browser.py``)."""
    from browser import headless_chromium

    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="session")
def llama_server() -> Iterator[Any]:
    """llama.cpp's OpenAI-compatible server with the embedded GGUF, started once per session.

    Tests that kill a server start one of their own (``fault_server.LlamaServer``).
    """
    from fault_server import LlamaServer

    running = LlamaServer().start()
    yield running
    running.kill()
