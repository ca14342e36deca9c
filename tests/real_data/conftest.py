"""The checks on the real public datasets, collected only when this folder is named.

``make test-real-data`` (and ``.ci/run``'s real-data step) runs ``pytest tests/real_data``. The data is
read from ``$CULTURE_PROBE_REAL_DATA``, or from ``../shared/data`` beside the checkout when that
variable is unset: the published files listed in ``docs/testing.md``, never copied into the project.
``make test`` does not collect this folder (``norecursedirs`` in ``pyproject.toml``), so a clone
without the data runs every other test and reports nothing skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: where the real data is read from, unless set
REAL_DATA_VARIABLE = "CULTURE_PROBE_REAL_DATA"
DEFAULT_REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def real_data_folder() -> Path:
    """``$CULTURE_PROBE_REAL_DATA``, else ``../shared/data`` beside the checkout."""
    return Path(os.environ.get(REAL_DATA_VARIABLE) or DEFAULT_REAL_DATA)


@pytest.fixture(scope="session")
def real_data() -> Path:
    folder = real_data_folder()
    assert folder.is_dir(), (
        f"the real public data is not at {folder}: set {REAL_DATA_VARIABLE} to its folder"
    )
    return folder


@pytest.fixture(scope="session")
def real_blend_study(tmp_path_factory: pytest.TempPathFactory, real_data: Path, repo: Path) -> Path:
    """BLEnD's own beer-food question about the UK and South Korea: 3 prompts (en, en, ko)."""
    from culture_probe.importers import RegionResolver, import_blend, write_study
    from culture_probe.taxonomy import load_taxonomy

    taxonomy_path = repo / "taxonomy" / "taxonomy.yaml"
    taxonomy = load_taxonomy(taxonomy_path)
    imported = import_blend(
        real_data / "blend",
        RegionResolver.from_taxonomy(taxonomy),
        taxonomy,
        countries=["GB", "KR"],
        questions=["Al-en-02"],
    )
    return write_study(imported, tmp_path_factory.mktemp("real-blend") / "study", taxonomy_path)
