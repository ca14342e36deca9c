"""Two genuinely different models compared on the same prompts, offline.

- The null case: the embedded SmolLM2-135M-Instruct in transformers (float32, dequantized from its
  GGUF file) against the same GGUF file served by llama.cpp's server through the ``openai``
  backend. llama.cpp computes with the quantized weights and 8-bit activations, so the answers
  differ a little on every prompt (0.027 bits of Jensen-Shannon distance on average, see
  test_backend_openai.py), but the two are the same model: no item may differ after
  Benjamini-Hochberg.
- The planted difference: a model the test builds from the embedded one by untying its output
  layer from the embedding and making the output row of the label "A" 4% longer. Its logit for "A"
  grows, so with the options in canonical order it moves answers to the first option (the lowest
  score): the comparison must find lower scores on every item.

The slice: 2 items x 2 countries x 12 wordings x 2 option orders of the values study, 96 prompts.
The planted model answers only the half with the options in canonical order (48 prompts, where "A"
is the first option; in reversed order "A" is the last and the two effects would cancel), so its
comparison with the embedded model's run also shows ``shared_only``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from culture_probe.analysis import assert_consistent
from culture_probe.backends import create_backend
from culture_probe.compare import PlanMismatchError, compare
from culture_probe.compare._claims import compare_claims
from culture_probe.planning import PlanFilter, PreparedStudy, prepare
from culture_probe.runner import score_study
from fault_server import SERVED_ITEMS, SERVED_PROXIES, InterruptedRun

#: starts llama.cpp's server and scores 96 prompts with each of two models
pytestmark = pytest.mark.slow

#: the slice the session's served run scored (``served_values_run``)
ITEMS, PROXIES = SERVED_ITEMS, SERVED_PROXIES
#: how much longer the output row of the label "A" is made in the planted model
PLANTED_FACTOR = 1.04


def score_into(path: Path, prepared: PreparedStudy, backend: Any) -> Path:
    """A finished run directory, as ``culture-probe score`` leaves it."""
    score_study(prepared, backend, path)
    return path


def prefers_label_a(target: Path) -> Path:
    """The embedded model saved as a folder, with its output row of the label "A" 4% longer."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from culture_probe.backends.labels import label_token_ids
    from culture_probe.models import converted_copy, resolve_model

    source = converted_copy(resolve_model("embedded"))
    shutil.copytree(source, target)
    config = json.loads((source / "config.json").read_text())
    assert config["tie_word_embeddings"], "expected the embedded model's output layer to be tied"
    config["tie_word_embeddings"] = False  # the input embedding of "A" stays as it was
    (target / "config.json").write_text(json.dumps(config))
    weights = load_file(source / "model.safetensors")
    head = weights["model.embed_tokens.weight"].clone()
    tokens = label_token_ids(AutoTokenizer.from_pretrained(source), "A")  # "A" and " A"
    head[tokens] *= PLANTED_FACTOR
    weights["lm_head.weight"] = head
    save_file({k: v.contiguous() for k, v in weights.items()}, target / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    assert isinstance(head, torch.Tensor)
    return target


@pytest.fixture(scope="module")
def prepared(repo: Path) -> PreparedStudy:
    return prepare(repo / "taxonomy" / "values.yaml", PlanFilter(ITEMS, PROXIES))


@pytest.fixture(scope="module")
def canonical(prepared: PreparedStudy) -> PreparedStudy:
    """The slice with the options in canonical order only."""
    plan = prepared.plan.loc[prepared.plan["order"] == "canonical"].reset_index(drop=True)
    return PreparedStudy(prepared.study, plan.assign(row=range(len(plan))), prepared.design)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-runs")


@pytest.fixture(scope="module")
def embedded_run(embedded_values_run: Path) -> Path:
    return embedded_values_run


@pytest.fixture(scope="module")
def served_run(served_values_run: InterruptedRun) -> Path:
    # the session's served run of the same slice (interrupted and resumed, which changes nothing:
    # test_backend_openai), read from the top-k, as before exact rescoring existed: what a
    # difference between the builds is made of is measured in benchmarks/server_exact.py, and the
    # rescoring is checked in test_openai_exact.py, at a dozen requests per rescored prompt
    assert served_values_run.resumed.returncode == 0, served_values_run.resumed.stderr
    return Path(served_values_run.out)


@pytest.fixture(scope="module")
def planted_runs(runs: Path, canonical: PreparedStudy, embedded_run: Path) -> tuple[Path, Path]:
    model = prefers_label_a(runs / "smollm2-prefers-a")
    backend = create_backend("hf", model=str(model), dtype="float32")
    try:
        return embedded_run, score_into(runs / "planted", canonical, backend)
    finally:
        backend.close()


def show(comparison: Any) -> None:
    print("\n".join(comparison.summary["headline"]))
    print(comparison.tables["item_differences"].drop(columns=["model_a", "model_b"]).to_string())


def test_the_same_weights_served_by_llama_cpp_show_no_difference_that_matters(
    embedded_run: Path, served_run: Path
) -> None:
    # 2,000 resamples here: the claim is about the intervals' ends (within +-0.01)
    exact = compare([embedded_run, served_run], n_bootstrap=2000)
    show(exact)
    served = json.loads((served_run / "manifest.json").read_text())["backend"]
    assert exact.models == [
        "SmolLM2-135M-Instruct (hf, float32)",
        f"{served['model']} ({served['backend']}, {served['dtype']})",
    ]
    items = exact.tables["item_differences"]
    assert len(items) == 2 and items["n_prompts"].tolist() == [48, 48]
    # The answers are not identical: llama.cpp rounds the activations to 8 bits, which moves every
    # prompt a little, and can move an item consistently (measured with 3 countries: +0.0035 on
    # generalised_trust, p_bh 0.047). But every 95% interval lies within +-0.01 of the 0-1 score
    # scale: there the two are equivalent.
    assert (items["difference"].abs() > 0).all()
    assert (items["low"] > -0.01).all() and (items["high"] < 0.01).all()
    assert (exact.tables["interaction"]["p_interaction_bh"] >= 0.05).all()
    # asked whether the models differ by more than 0.01, the comparison finds no item that does
    comparison = compare([embedded_run, served_run], min_difference=0.01, n_bootstrap=2000)
    assert not comparison.tables["item_differences"]["significant"].any()
    assert not comparison.tables["proxy_differences"]["significant"].any()
    headline = " ".join(comparison.summary["headline"])
    assert "0 of 2 items differ" in headline and "by more than 0.01" in headline
    # models that differ on no item are not ranked across wordings
    assert "withheld: no item's difference between the models is claimed" in headline
    assert "mean Kendall's W" not in headline
    for result in (exact, comparison):
        claims = compare_claims(result.summary, result.tables)
        assert_consistent(claims, result.tables, result.summary)


def test_a_planted_preference_for_the_first_label_is_found_on_every_item(
    planted_runs: tuple[Path, Path],
) -> None:
    with pytest.raises(PlanMismatchError, match=r"48 prompts only in .*embedded, 0 only in"):
        compare(list(planted_runs))
    comparison = compare(list(planted_runs), shared_only=True, n_bootstrap=200)
    show(comparison)
    assert comparison.summary["n_prompts"] == 48 and comparison.summary["n_left_out"] == 48
    items = comparison.tables["item_differences"]
    assert items["significant"].all()
    assert (items["high"] < 0).all()  # planted minus embedded: nearer the first option
    assert (comparison.tables["interaction"]["p_model_bh"] < 0.05).all()
    # and it is far larger than the rounding of the null case
    larger = compare(list(planted_runs), shared_only=True, min_difference=0.01, n_bootstrap=200)
    assert larger.tables["item_differences"]["significant"].all()
    assert (comparison.tables["pair_reversals"]["reversal_probability"] < 0.2).all()


def test_the_command_line_compares_and_exports_the_planted_runs(
    planted_runs: tuple[Path, Path], tmp_path: Path, repo: Path
) -> None:
    report, answers = tmp_path / "compare.html", tmp_path / "answers.csv"
    for arguments in (
        ["compare", *map(str, planted_runs), "--shared-only", "-o", str(report)],
        ["export", *map(str, planted_runs), "-o", str(answers)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "culture_probe.cli", *arguments],
            capture_output=True, text=True, timeout=300, cwd=repo,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        if arguments[0] == "compare":
            assert "2 of 2 items differ by more than the wording noise" in done.stdout
            assert "48 prompts not shared by every run were left out" in done.stdout
    assert 'id="chart-differences"' in report.read_text()
    table = pd.read_csv(answers)
    assert len(table) == (96 + 48) * 4  # every prompt of each run x 4 options
    first_option = table.loc[table["display_position"] == 0]
    by_model = first_option.groupby("model")["probability"].mean()
    assert (
        by_model["smollm2-prefers-a (hf, float32)"]
        > by_model["SmolLM2-135M-Instruct (hf, float32)"]
    )
