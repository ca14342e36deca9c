"""``culture-probe import ...``: turn public datasets into study folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from culture_probe.importers import ImportedStudy, RegionResolver

app = typer.Typer(
    help="Import public datasets (GlobalOpinionQA, WVS distributions, AlKhamissi et al. "
    "paraphrases, BLEnD) as studies with human reference answers.",
    no_args_is_help=True,
)

OutArg = Annotated[Path, typer.Option("--out", "-o", help="Study folder to write.")]
TaxonomyOpt = Annotated[
    Path, typer.Option("--taxonomy", help="Taxonomy whose regions the countries map to.")
]
CountriesOpt = Annotated[
    str, typer.Option("--countries", help="Only these region ids (comma-separated).")
]
QuestionsOpt = Annotated[
    str, typer.Option("--questions", help="Only these question ids (comma-separated).")
]
MinCountriesOpt = Annotated[
    int, typer.Option("--min-countries", help="Questions with data for at least N countries.")
]
MaxQuestionsOpt = Annotated[
    int | None, typer.Option("--max-questions", help="At most N questions (in source order).")
]
FramingsOpt = Annotated[
    str, typer.Option("--framings", help="Keep only these framings (imagine,how_would,average).")
]
StudyIdOpt = Annotated[str | None, typer.Option("--study-id", help="Id of the written study.")]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Leave out rows that fail the checks (listed in import.json) instead of stopping.",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")]


def _split(values: str) -> list[str]:
    return [value.strip() for value in values.split(",") if value.strip()]


def _resolver(taxonomy: Path) -> RegionResolver:
    from culture_probe.importers import RegionResolver
    from culture_probe.taxonomy import load_taxonomy

    return RegionResolver.from_taxonomy(load_taxonomy(taxonomy))


def _finish(
    imported: ImportedStudy, out: Path, taxonomy: Path, framings: str, overwrite: bool
) -> None:
    from culture_probe.importers import write_study
    from culture_probe.importers._writer import keep_framings

    keep_framings(imported, _split(framings))
    path = write_study(imported, out, taxonomy, overwrite=overwrite)
    skipped = imported.skipped
    typer.echo(
        f"{path}: {len(imported.items)} items, {len(imported.study['axes']['region'])} regions, "
        f"{len(imported.reference)} reference rows"
        + (f"; {len(skipped)} rows left out (see {out / 'import.json'})" if skipped else "")
    )


@app.command("wvs")
def wvs(
    files: Annotated[list[Path], typer.Argument(help="WVS distribution JSON files.")],
    out: OutArg,
    taxonomy: TaxonomyOpt = Path("taxonomy/taxonomy.yaml"),
    countries: CountriesOpt = "",
    questions: QuestionsOpt = "",
    min_countries: MinCountriesOpt = 1,
    max_questions: MaxQuestionsOpt = None,
    framings: FramingsOpt = "",
    study_id: StudyIdOpt = None,
    skip_invalid: SkipOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """WVS-7 country distributions (Cao et al. 2025 sft_wvs_valid.json, lilyflower03 *_wvs.json)."""
    from culture_probe.importers import import_wvs

    imported = import_wvs(
        files,
        _resolver(taxonomy),
        study_id=study_id or out.name,
        countries=_split(countries),
        questions=_split(questions),
        min_countries=min_countries,
        max_questions=max_questions,
        strict=not skip_invalid,
    )
    _finish(imported, out, taxonomy, framings, overwrite)


@app.command("alkhamissi")
def alkhamissi(
    questions_file: Annotated[Path, typer.Argument(help="wvs_questions.json or its folder.")],
    out: OutArg,
    distributions: Annotated[
        list[Path] | None,
        typer.Option("--distributions", "-d", help="WVS distribution files to join (repeatable)."),
    ] = None,
    taxonomy: TaxonomyOpt = Path("taxonomy/taxonomy.yaml"),
    countries: CountriesOpt = "",
    questions: QuestionsOpt = "",
    min_countries: MinCountriesOpt = 1,
    max_questions: MaxQuestionsOpt = None,
    framings: FramingsOpt = "",
    study_id: StudyIdOpt = None,
    skip_invalid: SkipOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """AlKhamissi et al. (2024) paraphrase sets joined with WVS-7 country distributions."""
    from culture_probe.importers import import_alkhamissi

    imported = import_alkhamissi(
        questions_file,
        distributions or [],
        _resolver(taxonomy),
        study_id=study_id or out.name,
        countries=_split(countries),
        questions=_split(questions),
        min_countries=min_countries,
        max_questions=max_questions,
        strict=not skip_invalid,
    )
    _finish(imported, out, taxonomy, framings, overwrite)


@app.command("globalopinionqa")
def globalopinionqa(
    source: Annotated[
        str,
        typer.Argument(help="global_opinions.csv, or the hub id Anthropic/llm_global_opinions."),
    ],
    out: OutArg,
    taxonomy: TaxonomyOpt = Path("taxonomy/taxonomy.yaml"),
    countries: CountriesOpt = "",
    survey: Annotated[str, typer.Option("--source", help="Only GAS or WVS questions.")] = "",
    min_countries: MinCountriesOpt = 1,
    max_questions: MaxQuestionsOpt = None,
    framings: FramingsOpt = "",
    study_id: StudyIdOpt = None,
    skip_invalid: SkipOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """GlobalOpinionQA (Durmus et al. 2023): questions with per-country answer shares."""
    from culture_probe.importers import import_globalopinionqa

    imported = import_globalopinionqa(
        source,
        _resolver(taxonomy),
        study_id=study_id or out.name,
        countries=_split(countries),
        sources=_split(survey),
        min_countries=min_countries,
        max_questions=max_questions,
        strict=not skip_invalid,
    )
    _finish(imported, out, taxonomy, framings, overwrite)


@app.command("blend")
def blend(
    folder: Annotated[Path, typer.Argument(help="BLEnD's data/ folder (annotations, prompts).")],
    out: OutArg,
    taxonomy: TaxonomyOpt = Path("taxonomy/taxonomy.yaml"),
    countries: CountriesOpt = "",
    questions: QuestionsOpt = "",
    max_questions: MaxQuestionsOpt = None,
    english_only: Annotated[
        bool, typer.Option("--english-only", help="Ask in English only, not the local language.")
    ] = False,
    study_id: StudyIdOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """BLEnD (Myung et al. 2024): short-answer questions scored against annotated answers."""
    from culture_probe.importers import import_blend, write_study
    from culture_probe.taxonomy import load_taxonomy

    loaded = load_taxonomy(taxonomy)
    imported = import_blend(
        folder,
        _resolver(taxonomy),
        loaded,
        study_id=study_id or out.name,
        countries=_split(countries),
        questions=_split(questions),
        max_questions=max_questions,
        local_languages=not english_only,
    )
    path = write_study(imported, out, taxonomy, overwrite=overwrite)
    typer.echo(
        f"{path}: {len(imported.items)} short-answer items, {len(imported.templates)} languages, "
        f"{len(imported.reference)} annotated answers"
    )
