"""Bounds on inputs that the bad-input corpus cannot express as one command: a FIFO, the Python API's
arguments, option ranges, the backend's limits, the reference data's identity, CSV line breaks."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import culture_probe as cp
from culture_probe.backends import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.backends.context import check_plan_fits_backend
from culture_probe.backends.hf import HFOptions
from culture_probe.backends.openai import OpenAIOptions
from culture_probe.backends.options import parse_options
from culture_probe.backends.vllm import VLLMOptions
from culture_probe.errors import InputError
from culture_probe.runner import prepare, requests_for
from culture_probe.spreadsheet import write_csv
from culture_probe.study import load_study, read_reference

REPO = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "bad_inputs"


def test_a_study_that_is_a_fifo_is_refused_at_once_not_read_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "study.yaml"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "culture_probe.cli", "plan", str(fifo), "--out", "p.parquet"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "found a named pipe (FIFO); give a regular file" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize(
    ("options", "values", "message"),
    [
        (OpenAIOptions, {"concurrency": -1}, "concurrency must be a number of at least 1, got -1"),
        (OpenAIOptions, {"retry_budget_s": "-5"}, "retry_budget_s must be a number of at least 0"),
        (OpenAIOptions, {"backoff": -0.5}, "backoff must be a number of at least 0"),
        (OpenAIOptions, {"timeout": 0}, "timeout must be a number above 0, got 0.0"),
        (OpenAIOptions, {"top_logprobs": "0"}, "top_logprobs must be a number from 1 to 20"),
        (HFOptions, {"temperature": "nan"}, "temperature must be a number of at least 0, got nan"),
        (HFOptions, {"temperature": "inf"}, "temperature must be a number of at least 0, got inf"),
        (HFOptions, {"batch_size": 0}, "batch_size must be a number of at least 1, got 0"),
        (VLLMOptions, {"gpu_memory_utilization": 1.5}, "must be a number above 0 and at most 1"),
    ],
)
def test_options_out_of_their_declared_range_are_refused_by_name(
    options: type, values: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as raised:
        parse_options(options, values)
    assert str(raised.value).startswith(f"--option {next(iter(values))} ")


def test_options_within_range_are_kept() -> None:
    parsed = parse_options(OpenAIOptions, {"concurrency": "1", "backoff": "0", "temperature": 0})
    assert (parsed.concurrency, parsed.backoff, parsed.temperature) == (1, 0.0, 0.0)


def test_the_api_names_the_argument_of_a_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"argument runs: expected a list of run directories"):
        cp.compare("runs/ref")
    with pytest.raises(InputError, match=r"argument path: expected a run directory .* got int 3"):
        cp.load_run(3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"argument items \(--items\): expected a list of ids"):
        cp.run("taxonomy/values.yaml", items=7, out=tmp_path / "run")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"argument n_bootstrap \(--bootstrap\) must be"):
        cp.compare([tmp_path / "a", tmp_path / "b"], n_bootstrap=0)
    with pytest.raises(InputError, match=r"argument source: expected a run directory"):
        cp.export(3.5, tmp_path / "answers.csv")
    assert sorted(tmp_path.iterdir()) == []


def test_the_api_refuses_a_bootstrap_count_beyond_the_bound_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(InputError, match=r"bootstrap \(--bootstrap\) must be a number from 1 to"):
        cp.run(REPO / "taxonomy" / "values.yaml", out=out, bootstrap=10**8)
    assert not out.exists()


class _TopK(Backend):
    """A backend reading the top ``k`` log-probabilities of a server, as the openai one does."""

    def __init__(self, k: int, context: int | None = None, written: int = 0) -> None:
        self.k, self.context, self.written = k, context, written

    def info(self) -> BackendInfo:
        return BackendInfo("top-k", "tiny-context", "0", "float32")

    def max_options(self) -> int | None:
        return self.k

    def max_prompt_tokens(self, writing: bool = False) -> int | None:
        if self.context is None:
            return None
        return self.context - (self.written if writing else 0)

    def prompt_lengths(self, requests: Sequence[ScoringRequest]) -> list[int]:
        return [len((request.system + request.user).split()) for request in requests]

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        raise AssertionError("nothing may be scored")


def test_top_logprobs_below_the_number_of_options_is_refused_before_scoring() -> None:
    plan = prepare(REPO / "taxonomy" / "values.yaml").plan
    widest = int(plan["n_options"].max())
    with pytest.raises(InputError, match=rf"top_logprobs={widest} or more"):
        check_plan_fits_backend(_TopK(widest - 1), plan, requests_for)
    check_plan_fits_backend(_TopK(widest), plan, requests_for)


def test_a_prompt_longer_than_the_context_names_item_proxy_and_wording() -> None:
    plan = prepare(REPO / "taxonomy" / "values.yaml").plan
    words = plan.apply(lambda row: len((row["system"] + row["user"]).split()), axis=1)
    longest = plan.loc[words.idxmax()]
    with pytest.raises(InputError) as raised:
        check_plan_fits_backend(_TopK(20, context=int(words.max()) - 1), plan, requests_for)
    assert f"item '{longest['item_id']}'" in str(raised.value)
    assert (
        f"is {int(words.max())} tokens; tiny-context reads at most {int(words.max()) - 1}"
        in str(raised.value)
    )
    check_plan_fits_backend(_TopK(20, context=int(words.max())), plan, requests_for)


def test_a_prompt_answered_in_writing_needs_room_for_its_answer() -> None:
    plan = prepare(REPO / "taxonomy" / "values_elicitation.yaml").plan
    words = plan.apply(lambda row: len((row["system"] + row["user"]).split()), axis=1)
    writes = plan["elicitation"].isin(["written", "open"])
    longest_written = int(words[writes].max())
    context = int(words.max()) + 1
    check_plan_fits_backend(_TopK(20, context=context), plan, requests_for)
    # one token too many to write after the longest prompt that is answered in writing
    cramped = _TopK(20, context=context, written=context - longest_written + 1)
    with pytest.raises(InputError) as raised:
        check_plan_fits_backend(cramped, plan, requests_for)
    message = str(raised.value)
    assert (
        f"is {longest_written} tokens;" in message and "with room for its written answer" in message
    )
    named = plan.loc[words.eq(longest_written) & writes, "item_id"]
    assert any(f"item '{item}'" in message for item in named)


def _study_with_reference(tmp_path: Path, shares: tuple[float, float, float]) -> Path:
    folder = shutil.copytree(CASES / "reference_option_text_unknown", tmp_path / "study")
    rows = ["item_id,proxy,option,share"]
    rows += [
        f"rice,JP+hinduism,{option},{share}" for option, share in zip("012", shares, strict=True)
    ]
    rows[1] = rows[1].replace(",0,", ",Rice,")  # an option by its text
    (folder / "reference.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "study.yaml"


def test_the_reference_reads_options_by_text_and_stays_out_of_the_run_identity(
    tmp_path: Path,
) -> None:
    study_file = _study_with_reference(tmp_path, (0.7, 0.2, 0.1))
    first = load_study(study_file)
    table = read_reference(first.reference or "", first.items)
    assert table["option"].tolist() == [0, 1, 2]
    assert table["share"].tolist() == pytest.approx([0.7, 0.2, 0.1])

    corrected = load_study(_study_with_reference(tmp_path / "b", (0.5, 0.3, 0.2)))
    assert corrected.content_hash == first.content_hash  # a corrected reference: the same run
    items = Path(corrected.path).parent / "items.yaml"
    items.write_text(items.read_text(encoding="utf-8").replace("Potatoes", "Maize"), "utf-8")
    assert load_study(corrected.path).content_hash != first.content_hash


def test_a_carriage_return_inside_a_cell_keeps_one_row_per_record() -> None:
    frame = pd.DataFrame({"option_text": ["Yes\rNo", "A\nB", "plain"] * 4, "n": range(12)})
    buffer = io.StringIO()
    write_csv(frame, buffer)
    back = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert len(back) == 12 and back["option_text"].tolist() == frame["option_text"].tolist()


def test_a_paper_list_merges_titles_only_with_the_same_authors_and_year(tmp_path: Path) -> None:
    from culture_probe.survey import read_paper_csv

    path = tmp_path / "papers.csv"
    path.write_text(
        "title,authors_year\n"
        'Cultural Bias in LLMs,"Smith, et al. (2023)"\n'
        'cultural bias in LLMs.,"Jones, et al. (2023)"\n'
        'Cultural bias in LLMs!,"Smith, et al. (2023)"\n'
        'Culture Probes (2024a),"Lee, et al."\n'
        'Second Probes,"Lee, et al. (2024b)"\n'
        "[REST TRUNCATED],\n",
        encoding="utf-8",
    )
    records = read_paper_csv(path)
    assert [(r.title, r.year) for r in records] == [
        ("Cultural Bias in LLMs", 2023),
        ("cultural bias in LLMs.", 2023),
        ("Culture Probes", 2024),
        ("Second Probes", 2024),
    ]
    assert [note.split(": ", 1)[1][:60] for note in records.notes] == [
        "line 3 has the title of line 2 ('cultural bias in LLMs.') bu",
        "line 4 merged into line 2 as one paper (same authors and yea",
    ]


def test_a_cache_variable_naming_a_file_is_named_in_the_message(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "culture_probe.cli",
        "score",
        str(REPO / "taxonomy" / "values.yaml"),
    ]
    command += ["--items", "family_importance", "--proxies", "JP", "--out", str(tmp_path / "run")]
    environment = {**os.environ, "CULTURE_PROBE_CACHE": str(cache), "COLUMNS": "200"}
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=environment
    )
    assert done.returncode == 2, done.stderr
    assert f"{cache}: is not a folder; the environment variable CULTURE_PROBE_CACHE" in done.stderr
    assert "--model" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists() and cache.read_text(encoding="utf-8") == "not a folder\n"


class _HugeModelList(BaseHTTPRequestHandler):
    """A server whose model list is 2 MB: a limit to raise, not a wrong address."""

    def do_GET(self) -> None:
        body = b'{"data": [], "padding": "' + b"x" * 2_000_000 + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_an_oversized_reply_names_max_reply_bytes_not_base_url() -> None:
    from culture_probe.backends import create_backend
    from culture_probe.errors import CultureProbeError

    server = ThreadingHTTPServer(("127.0.0.1", 0), _HugeModelList)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        with pytest.raises(CultureProbeError) as raised:
            create_backend("openai", base_url=url, max_reply_bytes=100_000)
    finally:
        server.shutdown()
        server.server_close()
    message = str(raised.value)
    assert "larger than max_reply_bytes=100000" in message
    assert "raise --option max_reply_bytes" in message and "base_url should" not in message


class _FirstShown(Backend):
    """A backend that always leans to the first option shown, counting the prompts it scores."""

    def __init__(self) -> None:
        self.scored = 0

    def info(self) -> BackendInfo:
        return BackendInfo("first-shown", "none", "0", "float32")

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        self.scored += len(requests)
        return [
            ScoredPrompt(
                r.prompt_id,
                tuple([0.7] + [0.3 / (len(r.option_labels) - 1)] * (len(r.option_labels) - 1)),
                1.0,
            )
            for r in requests
        ]


def test_a_corrected_reference_is_read_again_without_scoring_again(tmp_path: Path) -> None:
    study_file = _study_with_reference(tmp_path, (0.7, 0.2, 0.1))
    out = tmp_path / "run"
    backend = _FirstShown()
    cp.run(study_file, backend=backend, out=out, bootstrap=100, report=False)
    assert backend.scored > 0
    _study_with_reference(tmp_path / "fixed", (0.5, 0.3, 0.2))
    shutil.copy(tmp_path / "fixed" / "study" / "reference.csv", study_file.parent / "reference.csv")

    again = _FirstShown()
    cp.run(study_file, backend=again, out=out, bootstrap=100, report=False)
    assert again.scored == 0
    stored = pd.read_parquet(out / "reference.parquet")
    assert stored["share"].tolist() == pytest.approx([0.5, 0.3, 0.2])


@pytest.mark.mount_namespace  # a read-only bind mount (unshare)
def test_a_read_only_run_folder_is_reported_elsewhere(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cp.run(_study_with_reference(tmp_path, (0.7, 0.2, 0.1)), backend=_FirstShown(), out=out,
           bootstrap=100, report=False)  # fmt: skip
    before = sorted(path.name for path in out.iterdir())
    page = tmp_path / "elsewhere.html"
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"]
    command += [str(out), sys.executable, "-m", "culture_probe.cli", "report", str(out)]
    done = subprocess.run(
        [*command, "--out", str(page)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert page.is_file() and "<html" in page.read_text(encoding="utf-8")[:500].lower()
    assert sorted(path.name for path in out.iterdir()) == before
