"""The packaged studies on small slices, scored by the embedded model once per test session.

The claims tests (``test_claims_studies.py``) and the report tests (``test_report_studies.py``)
read the same runs (the ``packaged_study_runs`` fixture in ``conftest.py``): a study is scored,
analysed and reported at most once per session, the first time a test asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: per study: items (an ordinal and a nominal one where the study has both) and proxies, chosen so
#: that every slice has two proxies per axis it touches (four crossed personas for the crossed
#: studies) and stays under about 110 prompts per language (the two-language crossed study asks
#: 288)
SLICES = {
    "values": ("family_importance", "JP,NG"),
    "values_languages": ("family_importance", "CN,JP"),
    "values_elicitation": ("family_importance", "US,JP"),
    "food": ("pork_acceptability,morning_drink", "IN,JP"),
    "food_religion": ("pork_at_home", "IN+islam,IN+hinduism,US+islam,US+hinduism"),
    "food_religion_languages": (
        "pork_at_home,everyday_staple",
        "IN+islam,IN+hinduism,US+islam,US+hinduism",
    ),
    "names": ("name_order", "EG,JP"),
    "social": ("deference_to_elders,caring_for_parents", "man,woman"),
    "technology": ("trusting_ai_assistants,drying_laundry", "BR,CN"),
}


class PackagedRuns:
    """Study name -> its slice's run (``cp.run``'s result, with ``report.html``), made on first
    use and kept for the session."""

    def __init__(self, repo: Path, backend: Any, root: pytest.TempPathFactory) -> None:
        self.repo, self.backend, self.root = repo, backend, root
        self.runs: dict[str, Any] = {}

    def __getitem__(self, study: str) -> Any:
        if study not in self.runs:
            import culture_probe as cp

            items, proxies = SLICES[study]
            self.runs[study] = cp.run(
                self.repo / "taxonomy" / f"{study}.yaml",
                backend=self.backend,
                out=self.root.mktemp(study) / "run",
                items=items,
                proxies=proxies,
                bootstrap=20,
            )
        return self.runs[study]
