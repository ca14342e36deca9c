"""Turn public datasets into ordinary studies with human reference answers.

Each importer reads a dataset's own files (or a Hugging Face hub id, where ``datasets`` and a network
are available), maps its country names to taxonomy regions, checks every distribution, and returns an
:class:`ImportedStudy` that :func:`write_study` writes as a study folder (``study.yaml``,
``items.yaml``, templates, framings, ``reference.parquet``) in one rename.

Example:
    >>> from culture_probe.importers import RegionResolver, import_wvs, write_study
    >>> resolver = RegionResolver.from_taxonomy(load_taxonomy("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
    >>> study = import_wvs([Path("sft_wvs_valid.json")], resolver, min_countries=8)  # doctest: +SKIP
    >>> write_study(study, Path("studies/wvs"), Path("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from culture_probe._lazy import lazy_attributes

# The public names are loaded on first use (PEP 562): the importers pull in pandas, and the CLI
# imports this package only to list its commands.
_SOURCES = {
    "import_alkhamissi": "_alkhamissi",
    "read_paraphrase_sets": "_alkhamissi",
    "import_blend": "_blend",
    "RegionResolver": "_countries",
    "normalise_name": "_countries",
    "MIN_COVERAGE": "_distributions",
    "SUM_TOLERANCE": "_distributions",
    "checked_shares": "_distributions",
    "import_globalopinionqa": "_globalopinionqa",
    "parse_options": "_globalopinionqa",
    "parse_selections": "_globalopinionqa",
    "ANSWER_COLUMNS": "_blend",
    "ImportedStudy": "_writer",
    "write_study": "_writer",
    "CountryDistribution": "_wvs",
    "import_wvs": "_wvs",
    "read_distribution_file": "_wvs",
    "reference_table": "_wvs",
}

if TYPE_CHECKING:
    from culture_probe.importers._alkhamissi import import_alkhamissi, read_paraphrase_sets
    from culture_probe.importers._blend import ANSWER_COLUMNS, import_blend
    from culture_probe.importers._countries import RegionResolver, normalise_name
    from culture_probe.importers._distributions import (
        MIN_COVERAGE,
        SUM_TOLERANCE,
        checked_shares,
    )
    from culture_probe.importers._globalopinionqa import (
        import_globalopinionqa,
        parse_options,
        parse_selections,
    )
    from culture_probe.importers._writer import ImportedStudy, write_study
    from culture_probe.importers._wvs import (
        CountryDistribution,
        import_wvs,
        read_distribution_file,
        reference_table,
    )


__getattr__ = lazy_attributes(__name__, _SOURCES)


__all__ = [
    "ANSWER_COLUMNS",
    "MIN_COVERAGE",
    "SUM_TOLERANCE",
    "CountryDistribution",
    "ImportedStudy",
    "RegionResolver",
    "checked_shares",
    "import_alkhamissi",
    "import_blend",
    "import_globalopinionqa",
    "import_wvs",
    "normalise_name",
    "parse_options",
    "parse_selections",
    "read_distribution_file",
    "read_paraphrase_sets",
    "reference_table",
    "write_study",
]
