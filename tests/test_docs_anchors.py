"""Every ``docs/<page>.md#anchor`` the code and the docs cite leads to a heading of that page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# "docs/statistics.md#reliability" in source; "(statistics.md#reliability)" as a link in docs/
CITED = re.compile(r"(?:docs/|\()([a-z0-9_-]+\.md)#([A-Za-z0-9_-]+)")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {heading_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def citations() -> list[tuple[str, str, str]]:
    files = [*(REPO / "src").rglob("*.py"), *DOCS.glob("*.md"), REPO / "README.md"]
    return [
        (str(path.relative_to(REPO)), page, anchor)
        for path in files
        for page, anchor in CITED.findall(path.read_text(encoding="utf-8"))
    ]


def test_the_anchor_rule_matches_github() -> None:
    assert heading_anchor("Culture against wording: the variance decomposition") == (
        "culture-against-wording-the-variance-decomposition"
    )
    assert heading_anchor("plan.parquet") == "planparquet"
    assert "reliability" in anchors(DOCS / "statistics.md")


def test_the_code_cites_the_statistics_page_and_no_file_outside_the_repository() -> None:
    cited = citations()
    assert sum(page == "statistics.md" for _, page, _ in cited) >= 30
    for path in (REPO / "src").rglob("*.py"):
        assert "robustness.md" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize(("source", "page", "anchor"), citations())
def test_every_cited_anchor_is_a_heading(source: str, page: str, anchor: str) -> None:
    assert (DOCS / page).is_file(), f"{source} cites docs/{page}, which does not exist"
    assert anchor in anchors(DOCS / page), f"{source} cites {page}#{anchor}: no such heading"
