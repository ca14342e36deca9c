"""Shared fixtures: upstream-format data, one embedded model per session, and what this machine can run.

The suite needs nothing outside the repository: ``upstream_data`` writes small files in the public
datasets' formats (``upstream.py``). The checks on the real public data live in ``real_data/``,
which ``pytest`` only collects when it is named (``make test-real-data``).

Tests that need something a machine may lack (the split kernel's CPU instructions, user and mount
namespaces) carry a marker; where the machine lacks it they are left out of the collection, not
skipped, and the summary says which and why.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from culture_probe.events import RunEvents

REPO = Path(__file__).resolve().parents[1]

# Tests never reach a model hub: everything they load is on disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def upstream_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Invented rows in the public datasets' formats, one folder per dataset as upstream lays them out."""
    from upstream import write_upstream_data

    return write_upstream_data(tmp_path_factory.mktemp("upstream"))


def split_kernel_missing() -> str:
    """Why the split kernel cannot run on this machine; empty where it can."""
    from culture_probe.engine.split_kernel import kernel_unavailable_reason, split_kernel

    return "" if split_kernel() is not None else kernel_unavailable_reason()


def mount_namespace_missing() -> str:
    """Why this machine cannot mount a tmpfs in a user namespace of its own; empty where it can."""
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    try:
        failed = subprocess.run(probe, capture_output=True, timeout=30).returncode != 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        failed = True
    return "unshare cannot create a user and mount namespace here" if failed else ""


#: marker -> why this machine lacks what the marked tests need (empty: it has it)
MACHINE_NEEDS: dict[str, Callable[[], str]] = {
    "split_kernel": split_kernel_missing,
    "mount_namespace": mount_namespace_missing,
}


#: fixtures that start a program of their own: every test that uses one is slow
SLOW_FIXTURES = frozenset({"llama_server", "browser", "served_values_run"})
#: reason -> how many tests were left out for it, for the terminal summary
LEFT_OUT = pytest.StashKey[dict[str, int]]()


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_slow_fixtures(items)
    config.stash[LEFT_OUT] = leave_out_what_this_machine_lacks(config, items)


def mark_slow_fixtures(items: list[pytest.Item]) -> None:
    """Mark the tests that start llama.cpp's server or Chromium as slow."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def leave_out_what_this_machine_lacks(
    config: pytest.Config, items: list[pytest.Item]
) -> dict[str, int]:
    """Deselect the tests whose :data:`MACHINE_NEEDS` this machine lacks: reason -> count."""
    left_out: dict[str, list[pytest.Item]] = {}
    for marker, missing in MACHINE_NEEDS.items():
        marked = [item for item in items if item.get_closest_marker(marker)]
        reason = missing() if marked else ""
        if reason:
            left_out[reason] = marked
    dropped = {id(item) for marked in left_out.values() for item in marked}
    if dropped:
        config.hook.pytest_deselected(items=[item for item in items if id(item) in dropped])
        items[:] = [item for item in items if id(item) not in dropped]
    return {reason: len(marked) for reason, marked in left_out.items()}


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for reason, count in config.stash.get(LEFT_OUT, {}).items():
        terminalreporter.write_line(f"left out {count} tests this machine cannot run: {reason}")


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test of the ``kernel`` fixture runs once per build this CPU has, and needs the kernel."""
    if "kernel" in metafunc.fixturenames:
        # no build: the one "none" case is left out of the collection (split_kernel), never run
        builds = [pytest.param(b, marks=pytest.mark.split_kernel) for b in kernel_builds()]
        metafunc.parametrize(
            "kernel",
            builds or [pytest.param("none", marks=pytest.mark.split_kernel)],
            indirect=True,
        )


@pytest.fixture
def kernel(request: pytest.FixtureRequest) -> Any:
    """One build of the split kernel (see :func:`pytest_generate_tests`), compiled and loaded."""
    from culture_probe.engine.split_kernel import cpu_feature_flags, load_build

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


@pytest.fixture(scope="session")
def packaged_study_runs(
    repo: Path, hf_backend: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Every packaged study on its slice (``packaged_studies.SLICES``), scored by the embedded
    model, analysed and reported at most once per session: the claims and report tests share
    them."""
    from packaged_studies import PackagedRuns

    return PackagedRuns(repo, hf_backend, tmp_path_factory)


@pytest.fixture(scope="session")
def blend_study(tmp_path_factory: pytest.TempPathFactory, upstream_data: Path) -> Path:
    """A BLEnD-format beer-food question about the UK and South Korea: 3 prompts (en, en, ko)."""
    from culture_probe.importers import RegionResolver, import_blend, write_study
    from culture_probe.taxonomy import load_taxonomy
    from upstream import BLEND_QUESTION

    taxonomy_path = REPO / "taxonomy" / "taxonomy.yaml"
    taxonomy = load_taxonomy(taxonomy_path)
    imported = import_blend(
        upstream_data / "blend",
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
def embedded_values_run(
    repo: Path, hf_backend: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The served slice (``fault_server.SERVED_ITEMS`` x ``SERVED_PROXIES``, 96 prompts) scored
    once per session by the embedded model at float32: compared with the served run
    (test_compare_models) and with a bfloat16 run (test_compare_noise)."""
    from culture_probe.planning import PlanFilter, prepare
    from culture_probe.runner import score_study
    from fault_server import SERVED_ITEMS, SERVED_PROXIES

    prepared = prepare(repo / "taxonomy" / "values.yaml", PlanFilter(SERVED_ITEMS, SERVED_PROXIES))
    # the folder's name is how a comparison names the run ("48 prompts only in .../embedded")
    path = tmp_path_factory.mktemp("values-slice") / "embedded"
    score_study(prepared, hf_backend, path)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="session")
def served_values_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The values study's slice (2 items x JP, DE: 96 prompts) scored once per session by
    ``culture-probe score`` through llama.cpp's server, killed after two chunks and resumed
    (``fault_server.score_interrupted``): test_backend_openai checks the stop and the resume,
    test_compare_models compares the finished run with the embedded model's."""
    from fault_server import score_interrupted

    return score_interrupted(repo, tmp_path_factory.mktemp("served-values") / "run")


@pytest.fixture(scope="session")
def llama_server() -> Iterator[Any]:
    """llama.cpp's OpenAI-compatible server with the embedded GGUF, started once per session.

    Tests that kill a server start one of their own (``fault_server.LlamaServer``).
    """
    from fault_server import LlamaServer

    running = LlamaServer().start()
    yield running
    running.kill()
