"""The terminal summary wraps to the terminal's width: nothing cropped at 60, 80 or 120 columns."""

from __future__ import annotations

import pytest
from rich.console import Console

from culture_probe.analysis import AnalysisResult, analyze, format_terminal_summary, tidy_responses
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1, wording=0.02, noise=0.01, position_bias=0.2),
        n_items=3, n_proxies=4, n_paraphrases=3, seed=3,
    )  # fmt: skip
    return analyze(tidy_responses(plan, responses), n_bootstrap=30, n_permutations=19)


def _printed(result: AnalysisResult, width: int) -> str:
    console = Console(width=width, record=True)
    console.print(format_terminal_summary(result))
    return console.export_text()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_every_line_fits_and_nothing_is_cropped(result: AnalysisResult, width: int) -> None:
    text = _printed(result, width)
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    flat = " ".join(text.split())
    for sentence in result.headline:  # every sentence, whole, in the order the analysis gave
        assert " ".join(sentence.split()) in flat


def test_sentences_use_the_whole_width_of_a_wide_terminal(result: AnalysisResult) -> None:
    widest = max(len(line.rstrip()) for line in _printed(result, 120).splitlines())
    assert widest > 100  # a caption bound to the table's width would stop near 78


def test_a_narrow_terminal_gets_every_number_of_the_table_as_lines(result: AnalysisResult) -> None:
    wide, narrow = _printed(result, 120), _printed(result, 60)
    assert "culture" in wide.splitlines()[2]  # the table's header row
    region = next(line for line in " ".join(narrow.split()).split("Culture or wording?")[1:])
    shares = result.summary["axes"]["region"]["aggregates"]["mean_culture_share"]
    assert f"axis region ({result.summary['axes']['region']['n_items']} items)" in region
    assert f"{shares['estimate']:.0%}".rstrip("%") in region.split("culture ")[1][:12]
