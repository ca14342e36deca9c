"""The sentences about how the answer is asked for, as typed claims read from
``elicitation_stats`` and ``factor_summary`` (docs/statistics.md, "Elicitation")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from culture_probe.analysis._claims import ALPHA, Claim, Condition, Figure, Source, Test
from culture_probe.analysis._claims import interval_template as interval
from culture_probe.analysis._elicitation import (
    DOMINATED,
    FACTOR,
    LEVEL_NAMES,
    OUTCOME_RATES,
    SIGNIFICANT,
)
from culture_probe.analysis._headline import N_WAY
from culture_probe.analysis._summary import ORDINAL_MEASURE


def _level_name(level: str) -> str:
    """How a sentence names an elicitation level: "the written answer"; unknown levels as given."""
    return LEVEL_NAMES.get(level, level)


def elicitation_claims(table: pd.DataFrame, factor_summary: pd.DataFrame | None) -> list[Claim]:
    """Per axis: the verdict count, elicitation's N-way share, the agreement with the reference
    level, the distribution shift, the outcomes and, with human data, the similarity per level."""
    claims: list[Claim] = []
    for axis, rows in table.groupby("axis", sort=True):
        study = rows.loc[rows["scope"] == "study"].set_index("level")
        levels = list(study.index)
        claims.append(_verdict_claim(str(axis), rows, levels))
        share = _share_claim(str(axis), factor_summary)
        if share is not None:
            claims.append(share)
        for build in (_agreement_claim, _shift_claim, _outcome_claim, _human_claim):
            claim = build(str(axis), study, levels)
            if claim is not None:
                claims.append(claim)
    return claims


def _study(axis: str, level: str) -> tuple[Condition, ...]:
    return (
        Condition("scope", "==", "study"),
        Condition("axis", "==", axis),
        Condition("level", "==", level),
    )


def _items(axis: str, reference_level: str) -> tuple[Condition, ...]:
    return (
        Condition("scope", "==", "item"),
        Condition("axis", "==", axis),
        Condition("level", "==", reference_level),
    )


def _level_list(levels: list[str]) -> str:
    names = [_level_name(level) for level in levels]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _verdict_claim(axis: str, rows: pd.DataFrame, levels: list[str]) -> Claim:
    items = rows.loc[(rows["scope"] == "item") & (rows["level"] == levels[0])]
    where = _items(axis, levels[0])
    counts = {
        name: Figure(
            float((items["verdict"] == verdict).sum()),
            "count",
            Source(
                "elicitation_stats",
                "verdict",
                (*where, Condition("verdict", "==", verdict)),
                "count",
            ),
        )
        for name, verdict in (("k", DOMINATED), ("s", SIGNIFICANT))
    }
    tested = items["p_elicitation_bh"].notna()
    counts["n"] = Figure(
        float(tested.sum()),
        "count",
        Source(
            "elicitation_stats",
            "p_elicitation_bh",
            (*where, Condition("p_elicitation_bh", "notna")),
            "count",
        ),
    )
    test = Test(
        "F test of the elicitation effect per item (Light and Margolin's C on nominal items), "
        "Benjamini-Hochberg adjusted",
        n=int(tested.sum()),
        n_significant=int((items["p_elicitation_bh"] < ALPHA).sum()),
    )
    return Claim(
        key=f"{axis}:elicitation_verdicts",
        axis=axis,
        kind="count",
        subject="elicitation",
        quantity="items whose answer depends on how it is asked (docs/statistics.md, Elicitation)",
        measure=", ".join(sorted(set(items["measure"].dropna().astype(str)))) or ORDINAL_MEASURE,
        unit="items",
        template=(
            "Asked as {levels}, {k} of {n} items on the {axis} axis are elicitation-dominated: "
            "how the answer is asked for moves it significantly (Benjamini-Hochberg) and more "
            "than culture does; in {s} more it is significant but culture moves the answer as much."
        ),
        figures=counts,
        words={"levels": _level_list(levels), "axis": axis},
        test=test,
    )


def _share_claim(axis: str, summary: pd.DataFrame | None) -> Claim | None:
    if summary is None or summary.empty:
        return None
    row = summary.loc[(summary["axis"] == axis) & (summary["factor"] == FACTOR)]
    if row.empty or not np.isfinite(float(row["share"].iat[0])):
        return None
    where = (Condition("axis", "==", axis), Condition("factor", "==", FACTOR))
    figures = {
        f"estimate{suffix}": Figure(
            float(row[column].iat[0]), "percent", Source("factor_summary", column, where)
        )
        for suffix, column in (("", "share"), ("_low", "share_low"), ("_high", "share_high"))
    }
    return Claim(
        key=f"{axis}:factor:elicitation",
        axis=axis,
        kind="share",
        subject=FACTOR,
        quantity=N_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template="How the answer is asked for (elicitation, a fixed factor) explains "
        + interval("estimate")
        + " of the answer variance over all declared factors.",
        figures=figures,
    )


def _interval_figures(
    stem: str, column: str, style: str, study: pd.DataFrame, axis: str, level: str
) -> dict[str, Figure]:
    """A level's study-scope estimate and 95% bounds of ``column``, named ``stem``, ``stem_low``
    and ``stem_high`` for :func:`interval`."""
    return {
        stem + suffix: Figure(
            float(study.at[level, column + suffix]),
            style,
            Source("elicitation_stats", column + suffix, _study(axis, level)),
        )
        for suffix in ("", "_low", "_high")
    }


def _agreement_claim(axis: str, study: pd.DataFrame, levels: list[str]) -> Claim | None:
    shown = [level for level in levels[1:] if study.at[level, "n_pairs"] > 0]
    if not shown:
        return None
    figures: dict[str, Figure] = {}
    parts = []
    for index, level in enumerate(shown):
        stem = f"a{index}"
        figures.update(_interval_figures(stem, "agreement", "percent", study, axis, level))
        figures[f"n{index}"] = Figure(
            float(study.at[level, "n_pairs"]),
            "count",
            Source("elicitation_stats", "n_pairs", _study(axis, level)),
        )
        parts.append(f"by {_level_name(level)} in " + interval(stem) + f" of {{n{index}}} cells")
    written = ' (for the written answer, the agreement Wang et al. call "My Answer is C")'
    return Claim(
        key=f"{axis}:elicitation_agreement",
        axis=axis,
        kind="rate",
        subject=f"agreement with {_level_name(levels[0])}",
        quantity="share of prompt cells with the same answer (Wilson interval over cells)",
        measure="chosen option",
        unit="rate",
        template="The option {reference} makes most likely on a prompt cell is chosen "
        + "; ".join(parts)
        + " (95% Wilson intervals)"
        + (written if "written" in shown else "")
        + ".",
        figures=figures,
        words={"reference": _level_name(levels[0])},
    )


def _shift_claim(axis: str, study: pd.DataFrame, levels: list[str]) -> Claim | None:
    shown = [level for level in levels[1:] if np.isfinite(float(study.at[level, "js_shift"]))]
    if not shown:
        return None
    figures: dict[str, Figure] = {}
    parts = []
    for index, level in enumerate(shown):
        stem = f"d{index}"
        figures.update(_interval_figures(stem, "js_shift", "decimal", study, axis, level))
        parts.append(f"{_level_name(level)} by " + interval(stem))
    return Claim(
        key=f"{axis}:elicitation_shift",
        axis=axis,
        kind="agreement",
        subject=f"answer distribution against {_level_name(levels[0])}",
        quantity="mean over items of the Jensen-Shannon distance between pooled distributions",
        measure="option distribution (Jensen-Shannon distance, bits)",
        unit="bits",
        template="The answer distribution moves away from {reference}'s under "
        + "; ".join(parts)
        + " bits of Jensen-Shannon distance, on average over items (intervals resample items "
        "and wordings).",
        figures=figures,
        words={"reference": _level_name(levels[0])},
    )


def _outcome_claim(axis: str, study: pd.DataFrame, levels: list[str]) -> Claim | None:
    figures: dict[str, Figure] = {}
    parts = []
    for index, level in enumerate(levels):
        rates = [(o, c) for o, c in OUTCOME_RATES.items() if float(study.at[level, c]) > 0]
        if not rates:
            continue
        texts = []
        for outcome, column in rates:
            name = f"{column}{index}"
            figures[name] = Figure(
                float(study.at[level, column]),
                "percent",
                Source("elicitation_stats", column, _study(axis, level)),
            )
            texts.append(f"{{{name}}} {outcome}")
        parts.append(f"{_level_name(level)}: " + ", ".join(texts))
    if not parts:
        return None
    return Claim(
        key=f"{axis}:elicitation_outcomes",
        axis=axis,
        kind="rate",
        subject="answers that name no option",
        quantity="share of responses per outcome and level",
        measure="outcome",
        unit="rate",
        template="Counted, not dropped: " + "; ".join(parts) + ".",
        figures=figures,
    )


def _human_claim(axis: str, study: pd.DataFrame, levels: list[str]) -> Claim | None:
    known = [level for level in levels if np.isfinite(float(study.at[level, "human_similarity"]))]
    if len(known) < 2:
        return None
    figures = {
        f"h{index}": Figure(
            float(study.at[level, "human_similarity"]),
            "decimal",
            Source("elicitation_stats", "human_similarity", _study(axis, level)),
        )
        for index, level in enumerate(known)
    }
    parts = [f"{{h{index}}} under {_level_name(level)}" for index, level in enumerate(known)]
    return Claim(
        key=f"{axis}:elicitation_people",
        axis=axis,
        kind="agreement",
        subject="similarity to people per elicitation level",
        quantity="mean over items and proxies of AvgP (1 - Jensen-Shannon distance)",
        measure="option distribution (Jensen-Shannon distance)",
        unit="similarity",
        template="Similarity to the people's answers (AvgP) is " + ", ".join(parts) + ".",
        figures=figures,
    )
