"""How the answer is asked for, as a design factor: the study key, the prompts, the levels scored.

The model tests use the embedded SmolLM2-135M-Instruct (float32, loaded once per session) on small
slices; the constrained distribution is checked against the model's own token log-probabilities
read off one plain forward pass of the prompt followed by the label.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from culture_probe.backends import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.backends.constrained import (
    LabelTrie,
    constrained_answer,
    draw_seed,
    label_trie,
)
from culture_probe.backends.generation import parse_answer
from culture_probe.columns import ELICITATION_LEVELS
from culture_probe.design import build_plan, short_hash
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.planning import PlanFilter, prepare
from culture_probe.runner import RunSettings, run_study, score_study
from culture_probe.scoring import build_manifest, score_plan
from culture_probe.store import RunDirectory
from culture_probe.study import load_study

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "taxonomy" / "values.yaml"
EXAMPLE = REPO / "taxonomy" / "values_elicitation.yaml"
#: the values study's plan before the elicitation factor existed: its prompt ids, user and system
#: texts, hashed (``short_hash`` of each column as a list), and of a budget of 2,000
DEFAULT_PLAN_HASHES = ("f987e9caabbf66e1", "20f2e649c7cf33bc", "584f99e19082ce57")
DEFAULT_BUDGET_2000_IDS = "c13e8df3897ad6f8"


def _with_levels(tmp_path: Path, source: Path, levels: str | None) -> Path:
    """A copy of a study beside the original's files, with another ``elicitation`` line."""
    lines = [
        line
        for line in source.read_text(encoding="utf-8").splitlines()
        if not line.startswith("elicitation:")
    ]
    if levels is not None:
        lines.append(f"elicitation: {levels}")
    lines.append(f"taxonomy: {REPO}/taxonomy/taxonomy.yaml")
    text = "\n".join(lines).replace("../probes/", f"{REPO}/probes/") + "\n"
    target = tmp_path / source.name
    target.write_text(text, encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------------------
# the study key and the plan


def test_a_study_without_the_key_keeps_its_plan_and_prompt_ids() -> None:
    plan = build_plan(load_study(VALUES))
    assert set(plan["elicitation"]) == {"first_token"}
    hashes = tuple(short_hash(list(plan[column])) for column in ("prompt_id", "user", "system"))
    assert hashes == DEFAULT_PLAN_HASHES
    drawn = build_plan(load_study(VALUES), budget=2000)
    assert short_hash(list(drawn["prompt_id"])) == DEFAULT_BUDGET_2000_IDS


def test_first_token_prompts_are_the_same_with_other_levels_beside_them(tmp_path: Path) -> None:
    default = build_plan(load_study(VALUES), items=("family_importance",))
    study = _with_levels(tmp_path, VALUES, "[written, first_token, constrained]")
    plan = build_plan(load_study(study), items=("family_importance",))
    assert len(plan) == 3 * len(default)
    first = plan.loc[plan["elicitation"] == "first_token"]
    assert list(first["prompt_id"]) == list(default["prompt_id"])
    # constrained asks the very same messages, under ids of its own
    constrained = plan.loc[plan["elicitation"] == "constrained"]
    assert list(constrained["text_hash"]) == list(default["text_hash"])
    assert not set(constrained["prompt_id"]) & set(default["prompt_id"])


def test_written_shows_the_options_and_open_hides_them() -> None:
    plan = build_plan(load_study(EXAMPLE), items=("family_importance",), proxies=("JP",))
    cell = plan.loc[(plan["paraphrase"] == "p1") & (plan["order"] == "canonical")]
    user = dict(zip(cell["elicitation"], cell["user"], strict=True))
    question = "How much does family matter in your life?"
    assert user["written"] == (
        f"{question}\n\nA. Very important\nB. Rather important\nC. Not very important\n"
        "D. Not at all important\n\nAnswer in a sentence or two, and say which option you "
        "choose.\nAnswer:"
    )
    assert user["open"] == f"{question}\n\nAnswer in your own words, in a sentence or two."
    assert user["constrained"] == user["first_token"]
    assert user["first_token"].endswith("Answer with the letter of one option only.")
    # the option order does not change an open prompt
    opened = plan.loc[plan["elicitation"] == "open"]
    assert opened.groupby("paraphrase")["text_hash"].nunique().eq(1).all()


def test_a_budget_draws_the_levels_evenly(tmp_path: Path) -> None:
    study = load_study(_with_levels(tmp_path, VALUES, "[first_token, written]"), budget=2000)
    plan = build_plan(study)
    assert len(plan) == 2000
    per_item = plan.groupby("item_id")["elicitation"].value_counts().unstack()
    assert (per_item.max(axis=1) - per_item.min(axis=1)).le(1).all()


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ("[first_token, writen]", r"unknown elicitation level 'writen'.*did you mean 'written'"),
        ("[open, open]", r"elicitation level 'open' is given twice"),
        ("[]", r"expected a non-empty list of elicitation levels"),
        ("7", r"unknown elicitation level 7"),
    ],
)
def test_a_bad_level_names_the_file_line_and_key(tmp_path: Path, levels: str, message: str) -> None:
    study = _with_levels(tmp_path, EXAMPLE, levels)
    line = next(
        number
        for number, text in enumerate(study.read_text().splitlines(), 1)
        if text.startswith("elicitation:")
    )
    with pytest.raises(InputError, match=message) as refused:
        load_study(study)
    assert (refused.value.path, refused.value.line, refused.value.key) == (
        str(study),
        line,
        "elicitation",
    )


def test_a_backend_lacking_a_level_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    class ReadsFirstTokens(Backend):
        def info(self) -> BackendInfo:
            return BackendInfo("first-token-only", "none", "0", "float32")

        def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
            return [ScoredPrompt(r.prompt_id, (0.25,) * 4, 1.0) for r in requests]

    assert ReadsFirstTokens.elicitation_levels() == ("first_token",)
    prepared = prepare(EXAMPLE, PlanFilter(items=("family_importance",), proxies=("JP",)))
    with pytest.raises(CultureProbeError, match=r"first-token-only backend.*level 'constrained'"):
        score_study(prepared, ReadsFirstTokens(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_level_ray_replicas_lack_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    settings = RunSettings(EXAMPLE, ray="local", out=tmp_path / "run")
    with pytest.raises(CultureProbeError, match=r"Ray-replicated hf backend.*'constrained'"):
        run_study(settings)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# the constrained level on the embedded model


def _prompt_ids(backend: Any, request: ScoringRequest) -> list[int]:
    return list(backend.tokenizer.encode(backend.prompt_text(request), add_special_tokens=False))


def _sequence_log_prob(backend: Any, prompt: list[int], label: list[int]) -> tuple[float, Any]:
    """log p(label | prompt) from one forward pass, and the distribution after the label."""
    import torch

    ids = torch.tensor([prompt + label])
    with torch.inference_mode():
        log_probs = torch.log_softmax(backend.model(input_ids=ids).logits[0].float(), dim=-1)
    steps = range(len(prompt) - 1, len(prompt) + len(label) - 1)
    total = sum(float(log_probs[step, token]) for step, token in zip(steps, label, strict=True))
    return total, log_probs[-1]


REQUEST = ScoringRequest(
    "agree",
    "Imagine you are a person from Japan.",
    "Most people can be trusted.\n\nStrongly agree\nAgree\nDisagree\n\n"
    "Answer with the first word of one option only.",
    ("Strong", "Strongly", "Agree", "Disagree"),
)


def test_the_constrained_distribution_is_the_labels_sequence_probabilities(
    hf_backend: Any,
) -> None:
    # "Strongly" is two tokens, and its first is "Strong", another label: "Strong" counts only
    # where the model does not go on into "ly"
    tokenizer = hf_backend.tokenizer
    assert tokenizer.encode("Strongly", add_special_tokens=False)[:1] == tokenizer.encode(
        "Strong", add_special_tokens=False
    )
    prompt = _prompt_ids(hf_backend, REQUEST)
    masses = []
    for label in REQUEST.option_labels:
        mass = 0.0
        spellings = {
            tuple(tokenizer.encode(s, add_special_tokens=False)) for s in (label, " " + label)
        }
        for spelling in spellings:
            log_prob, after = _sequence_log_prob(hf_backend, prompt, list(spelling))
            going_on = [
                longer[len(spelling)]
                for other in REQUEST.option_labels
                for longer in (
                    tokenizer.encode(o, add_special_tokens=False) for o in (other, " " + other)
                )
                if len(longer) > len(spelling) and tuple(longer[: len(spelling)]) == spelling
            ]
            ends = 1.0 - sum(math.exp(float(after[token])) for token in set(going_on))
            mass += math.exp(log_prob) * ends
        masses.append(mass)
    [result] = hf_backend.score_constrained([REQUEST])
    expected = np.array(masses) / sum(masses)
    np.testing.assert_allclose(result.label_probs, expected, rtol=1e-4, atol=1e-6)
    assert result.option_mass == pytest.approx(sum(masses), rel=1e-4)
    assert result.outcome == "answered" and 0 <= result.choice < 4


def test_the_same_seed_draws_the_same_label_and_seeds_follow_the_distribution(
    hf_backend: Any,
) -> None:
    seeds = range(200)
    requests = [
        ScoringRequest(REQUEST.prompt_id, REQUEST.system, REQUEST.user, REQUEST.option_labels, s)
        for s in seeds
    ]
    first = hf_backend.score_constrained(requests)
    again = hf_backend.score_constrained(requests[:30])
    assert [r.choice for r in again] == [r.choice for r in first[:30]]
    probs = np.array(first[0].label_probs)
    counts = np.bincount([r.choice for r in first], minlength=len(probs))
    # each label's share of the draws within 4 binomial standard errors of its probability
    spread = 4 * np.sqrt(probs * (1 - probs) / len(first))
    assert np.all(np.abs(counts / len(first) - probs) <= spread + 1e-9)
    assert len(set(r.choice for r in first)) > 1


def test_prompts_under_one_seed_draw_independently() -> None:
    # two labels at even odds: with the seed alone every prompt would draw the same label
    trie = LabelTrie.build([[(1,)], [(2,)]])
    reads = {(): {1: math.log(0.3), 2: math.log(0.3)}}
    draws = [
        constrained_answer(trie, reads, draw_seed(ScoringRequest(f"p{k}", "", f"Q{k}", ("A", "B"))))
        for k in range(400)
    ]
    assert all(draw.probs == (0.5, 0.5) for draw in draws)
    first = sum(draw.choice == 0 for draw in draws)
    assert abs(first - 200) <= 4 * math.sqrt(400 * 0.25)
    again = constrained_answer(trie, reads, draw_seed(ScoringRequest("x", "", "Q7", ("A", "B"))))
    assert again.choice == draws[7].choice  # the same messages and seed: the same label


def test_labels_of_one_token_give_the_first_token_distribution(hf_backend: Any) -> None:
    request = ScoringRequest(
        "roman",
        "",
        "How much does family matter?\n\ni. Very important\nii. Rather important\n"
        "iii. Not very important\niv. Not at all important\n\nAnswer with the roman numeral.",
        ("i", "ii", "iii", "iv"),
    )
    trie = label_trie(hf_backend.tokenizer, request.option_labels)
    assert trie.branching_nodes() == [()]  # one token each, bare and after a space
    [constrained] = hf_backend.score_constrained([request])
    [first_token] = hf_backend.score([request])
    np.testing.assert_allclose(constrained.label_probs, first_token.label_probs, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# all four levels through the command line


@pytest.fixture(scope="module")
def four_level_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example study, one item and one persona, every level, through `culture-probe run`."""
    out = tmp_path_factory.mktemp("elicitation") / "run"
    command = [
        sys.executable, "-m", "culture_probe.cli", "run", str(EXAMPLE),
        "--items", "family_importance", "--proxies", "JP", "--dtype", "float32",
        "--option", "max_new_tokens=24", "--bootstrap", "100", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_every_level_runs_end_to_end_with_its_own_outcomes(four_level_run: Path) -> None:
    plan = pd.read_parquet(four_level_run / "plan.parquet")
    responses = pd.read_parquet(four_level_run / "responses.parquet")
    rows = plan.merge(responses, on="prompt_id", validate="1:1")
    assert rows.groupby("elicitation").size().to_dict() == {
        level: 4 for level in ELICITATION_LEVELS
    }
    by_level = {level: rows.loc[rows["elicitation"] == level] for level in ELICITATION_LEVELS}

    first = by_level["first_token"]
    assert first["outcome"].eq("answered").all() and first["mapped_by"].eq("").all()
    # labels A-D are one token each: the constrained distribution is the first-token one, and the
    # answer is the label drawn, which need not be the most probable
    constrained = by_level["constrained"].merge(
        first[["text_hash", "probs"]], on="text_hash", suffixes=("", "_first")
    )
    for probs, first_probs in zip(constrained["probs"], constrained["probs_first"], strict=True):
        np.testing.assert_allclose(probs, first_probs, atol=1e-5)
    assert constrained["answer"].between(0, 3).all()

    written = by_level["written"]
    assert written["mapped_by"].eq("parse_answer").all()
    for row in written.itertuples():
        shown = [row.options[index] for index in row.display_to_canonical]
        parsed = parse_answer(row.generated, list(row.option_labels), shown, "en")
        assert row.outcome == parsed.outcome
        if parsed.position is not None:
            assert row.answer == row.display_to_canonical[parsed.position]
            assert list(row.probs) == [float(k == row.answer) for k in range(4)]

    opened = by_level["open"]
    assert set(opened["outcome"]) <= {"answered", "refused", "invalid", "abstained"}
    assert opened["mapped_by"].ne("").all() and opened["generated"].str.len().gt(0).all()
    # one text per paraphrase, whatever the option order: asked once and mapped per row
    assert opened.groupby("paraphrase")["generated"].nunique().eq(1).all()
    for row in opened.loc[opened["outcome"] == "answered"].itertuples():
        assert list(row.probs) == [float(k == row.answer) for k in range(4)]
    for row in opened.loc[opened["outcome"] != "answered"].itertuples():
        assert len(row.probs) == 0 and row.answer == -1


def test_the_manifest_counts_each_level_and_its_time(four_level_run: Path) -> None:
    manifest = json.loads((four_level_run / "manifest.json").read_text())
    levels = manifest["elicitation"]
    assert {level: entry["prompts"] for level, entry in levels.items()} == {
        level: 4 for level in ELICITATION_LEVELS
    }
    assert all(entry["seconds"] > 0 for entry in levels.values())
    # a generated answer costs more than a forward pass
    assert levels["written"]["seconds"] > levels["first_token"]["seconds"]
    assert (four_level_run / "report.html").is_file()


def test_a_run_stopped_while_writing_resumes_with_nothing_scored_twice(
    hf_backend: Any, tmp_path: Path
) -> None:
    from culture_probe.backends import ScoringStopped

    class StopsWhileWriting(Backend):
        """The embedded model, stopping after the first written answer of its second call."""

        calls = 0

        def info(self) -> BackendInfo:
            return hf_backend.info()  # type: ignore[no-any-return]

        def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
            return hf_backend.score(requests)  # type: ignore[no-any-return]

        def write_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
            self.calls += 1
            if self.calls == 2:
                done = hf_backend.write_answers(requests[:1])
                raise ScoringStopped("the server went away", {0: done[0]})
            return hf_backend.write_answers(requests)  # type: ignore[no-any-return]

    study = _with_levels(tmp_path, EXAMPLE, "[first_token, written]")
    prepared = prepare(study, PlanFilter(items=("family_importance",), proxies=("JP",)))
    plan = prepared.plan
    run = RunDirectory.open(tmp_path / "run", build_manifest(prepared, hf_backend), plan)
    with pytest.raises(ScoringStopped):
        score_plan(run, plan, StopsWhileWriting(), chunk_size=3)
    saved = set(run.results()["prompt_id"])
    assert 0 < len(saved) < len(plan)
    assert score_plan(run, plan, hf_backend, chunk_size=3) == len(plan) - len(saved)
    chunks = pd.concat([pd.read_parquet(path) for path in run.chunk_paths()])
    assert chunks["prompt_id"].is_unique and set(chunks["prompt_id"]) == set(plan["prompt_id"])
