"""The registry: every design factor, run-file column and stats table, declared once.

Each declaration carries the name used in the files, the label and description a reader sees, and
what the rest of the package needs to treat it: the design balances and counts the factors
(:mod:`culture_probe.design`), the N-way decomposition fits them in this order
(:mod:`culture_probe.analysis`), the export writes them, the report labels its tables and
tooltips with the labels below and shows every stats table, and the reference tables of
``docs/run-directory.md`` are rendered from here (:func:`markdown_table`; a test keeps them equal).

Adding a design factor or a stats table starts here; ``docs/extending.md`` lists the other files.

Tables that summarise answers say which measure they use in a ``measure`` column: "expected ordinal
position" for ordinal items in ``item_stats`` (for a nominal item it says that measure is not
meaningful), "Gini variation (CATANOVA)" in ``nominal_stats`` (docs/statistics.md, "Nominal
items"). ``summary.json`` holds ``"claims"``, the typed claims every printed sentence is rendered
from, each with the table, row and column of every number it prints (docs/statistics.md,
"Claims").

Example:
    >>> [factor.name for factor in DESIGN_FACTORS if factor.kind == "format"]
    ['enumerator', 'separator', 'instruction', 'shots']
    >>> STATS_TABLE["factor_summary"].grain
    'axis x factor'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

TableT = TypeVar("TableT")

#: plan columns named after a proxy axis start with this: ``axis_region``, ``axis_religion``
AXIS_PREFIX = "axis_"
#: the plan column of the culture factor (a proxy value, or a crossed persona's joined values)
CULTURE_FACTOR = "proxy"


@dataclass(frozen=True)
class Column:
    """One column of a run file or stats table.

    Attributes:
        name: the column name in the Parquet file (``axis_<axis>`` stands for one per axis).
        label: the short header a reader sees in the report.
        description: what the column holds; the report's tooltip and the docs table.
    """

    name: str
    label: str
    description: str


@dataclass(frozen=True)
class Factor:
    """A design factor: a plan column whose levels the study crosses with every proxy.

    Attributes:
        name: the plan column (and the factor's name in ``factor_stats``).
        label: the short name a reader sees.
        plural: how the design line counts its levels ("3 enumerators").
        kind: ``wording``, ``format`` (rendered by a :class:`culture_probe.design.FormatVariant`),
            ``presentation``, ``language``, ``elicitation`` or ``sampling``.
        study_key: the study file key that declares its levels.
        description: what varies between its levels.
        fixed: whether the study declares every level of interest (a fixed effect, reported as
            differences between its levels), rather than a sample of the levels one could have
            written (a random facet). See docs/statistics.md, "Fixed factors".
    """

    name: str
    label: str
    plural: str
    kind: str
    study_key: str
    description: str
    fixed: bool = False


@dataclass(frozen=True)
class StatsTable:
    """One table the analysis writes to ``stats/<name>.parquet``.

    Attributes:
        name: the file stem.
        title: the heading the report shows it under.
        grain: what one row is ("item x axis").
        holds: what its columns hold, in a sentence (the docs table).
        html_id: the element id of its table in the report.
        shown: the columns the report shows, with labels and tooltips; empty: every column,
            headed by its name.
    """

    name: str
    title: str
    grain: str
    holds: str
    html_id: str = ""
    shown: tuple[Column, ...] = ()

    @property
    def element_id(self) -> str:
        """The report's element id of this table (``table-<name>``, dashed, unless declared)."""
        return self.html_id or "table-" + self.name.replace("_", "-")


# ------------------------------------------------------------------------------------------------
# design factors


#: the context factors, in the order the N-way decomposition adds them after the proxy axes (its
#: sums of squares are sequential, so the order is part of the model) and the budget balances them
DESIGN_FACTORS: tuple[Factor, ...] = (
    Factor("paraphrase", "paraphrase", "paraphrases", "wording", "paraphrases (items file)",
           "paraphrase id within the item (`p1`, ...)"),
    Factor("framing", "framing", "framings", "wording", "use_framings",
           "framing id (`imagine`, ...; `none` for the baseline): how the persona is introduced"),
    Factor("enumerator", "enumerator", "enumerators", "format", "formats.enumerator",
           "how the options are labelled (`A.`, `(a)`, `1.`, `i.`, `none`)", fixed=True),
    Factor("separator", "separator", "separators", "format", "formats.separator",
           "the text between two options (`\\n` by default)", fixed=True),
    Factor("instruction", "instruction", "instructions", "format", "formats.instruction",
           "the answer instruction's id (`default`, or the instruction's own id)", fixed=True),
    Factor("shots", "shots", "shots", "format", "formats.shots",
           "the number of few-shot demonstrations, as text (`0`, `1`, `3`)", fixed=True),
    Factor("order", "option order", "option orders", "presentation", "option_orders",
           "option order id (`canonical`, `reversed`, `cyclic1`, ...)", fixed=True),
    Factor("language", "language", "languages", "language", "languages",
           "language of the prompt (ISO 639-1)", fixed=True),
    Factor("elicitation", "elicitation", "elicitations", "elicitation", "elicitation",
           "how the answer is asked for: `first_token` (the labels' next-token probabilities), "
           "`constrained` (a label sampled under a constraint), `written` (a free answer with the "
           "options shown, parsed back), `open` (options hidden, the answer mapped to an option)",
           fixed=True),
    Factor("seed", "seed", "seeds", "sampling", "seeds",
           "sampling seed (0 for log-probability scoring)"),
)  # fmt: skip
FACTOR = {factor.name: factor for factor in DESIGN_FACTORS}
#: the context factors' plan columns, in the decomposition's order
CONTEXT_FACTORS = tuple(factor.name for factor in DESIGN_FACTORS)
#: the factors a format variant renders (the study's ``formats:`` key)
FORMAT_FACTORS = tuple(factor.name for factor in DESIGN_FACTORS if factor.kind == "format")
#: the factors whose levels the design fixes: their terms, and interactions among them, are fixed
#: effects in the N-way decomposition
FIXED_FACTORS = tuple(factor.name for factor in DESIGN_FACTORS if factor.fixed)
#: the levels of the ``elicitation`` factor, the first the default (docs/studies.md, "Elicitation")
ELICITATION_LEVELS = ("first_token", "constrained", "written", "open")
#: the elicitation levels whose answer the model writes as free text, read back to an option
WRITTEN_LEVELS = ("written", "open")


# ------------------------------------------------------------------------------------------------
# run files


def _columns(rows: Iterable[tuple[str, str]]) -> tuple[Column, ...]:
    """Columns whose label is their name (the run files are read by code, not by eye)."""
    return tuple(Column(name, name, description) for name, description in rows)


def _factor_column(name: str) -> tuple[str, str]:
    return name, FACTOR[name].description


#: ``plan.parquet``, one row per prompt, written by :mod:`culture_probe.design`
PLAN_SCHEMA: tuple[Column, ...] = _columns(
    [
        ("prompt_id", "stable content hash (16 hex) of the design cell and its messages: the key "
                      "everything joins on"),
        ("row", "position in the plan, the order results are reported in"),
        ("study", "study id"),
        ("item_id", "the probe item's id"),
        ("wvs_id", "the item's World Values Survey question, where it has one"),
        ("topic", "the item's topic"),
        ("scale", "`ordinal` or `nominal` (or `short_answer`)"),
        ("n_options", "number of answer options K"),
        ("axis", "the demographic axis of the proxy (`region`, ...; `none` for the baseline, "
                 "`placebo`; crossed axes joined, `region x religion`)"),
        ("proxy", "proxy value id (`JP`, ...; a crossed persona joins its values, `IN+hinduism`; "
                  "`none` for the baseline)"),
        ("proxy_name", "the proxy's readable name"),
        ("proxy_kind", "`culture`, `placebo` or `baseline`"),
        (AXIS_PREFIX + "<axis>", "one column per proxy axis of the study (`axis_region`, ...): "
                                 "that axis's value in this prompt (empty where it has none)"),
        _factor_column("paraphrase"),
        _factor_column("framing"),
        ("wording", "paraphrase and framing together, `p1/imagine` (`p1/imagine@ja` with several "
                    "languages): the wording facet of the analysis"),
        _factor_column("order"),
        *(_factor_column(name) for name in FORMAT_FACTORS),
        _factor_column("elicitation"),
        ("display_to_canonical", "list: the canonical option index shown at each display position"),
        ("option_labels", "list: the labels answered with, in display order (`A`, `a`, `1`, `ii`, "
                          "an option's first word for enumerator `none`, ...)"),
        ("options", "list: the option texts in canonical order"),
        _factor_column("seed"),
        _factor_column("language"),
        ("system", "the system message (empty when there is none)"),
        ("user", "the user message"),
        ("text_hash", "hash of the messages alone (identical prompts share it)"),
    ]
)  # fmt: skip
#: the plan's fixed columns (the ``axis_<axis>`` columns depend on the study)
PLAN_COLUMNS = tuple(c.name for c in PLAN_SCHEMA if not c.name.startswith(AXIS_PREFIX))

#: ``responses.parquet``, one row per scored prompt, written by :mod:`culture_probe.store`
RESPONSE_SCHEMA: tuple[Column, ...] = _columns(
    [
        ("prompt_id", "joins to the plan"),
        ("probs", "list: the probability of each option, canonical order, summing to 1 (empty for "
                  "a refusal, an abstention or an invalid answer); one-hot on the parsed or mapped "
                  "option for a written or open answer; for a constrained answer the exact "
                  "constrained distribution where the backend gives it, else one-hot on the "
                  "sampled label"),
        ("option_mass", "the probability the option labels got before renormalising"),
        ("answer", "canonical index of the chosen option (the most probable; for a constrained "
                   "answer the label sampled under the prompt's seed); -1 if none"),
        ("outcome", "`answered`, `refused`, `invalid`, or `abstained` (an open answer the mapper "
                    "could not assign to one option)"),
        ("generated", "the generated text (`generate` mode, short answers, written and open "
                      "answers; empty otherwise); for an `invalid` result, what made it invalid"),
        ("failure", "`server` when the server, not the model, spoiled the result (a malformed "
                    "reply): asked again when the same command runs again; empty otherwise"),
        ("mapped_by", "the rule or judge that assigned a written or open answer to an option "
                      "(`parse_answer`, or the mapper's rule); empty otherwise"),
    ]
)  # fmt: skip
RESPONSE_COLUMNS = tuple(column.name for column in RESPONSE_SCHEMA)

#: human reference distributions (``reference.parquet`` beside a study, or from an importer)
REFERENCE_COLUMNS = ("item_id", "proxy", "option", "share")

#: the prompt's design cell as :mod:`culture_probe.export` writes it beside each answer
EXPORT_DESIGN_COLUMNS = (
    "study",
    "item_id",
    "topic",
    "scale",
    "axis",
    CULTURE_FACTOR,
    "proxy_name",
    "proxy_kind",
    "paraphrase",
    "framing",
    "wording",
    *(name for name in CONTEXT_FACTORS if FACTOR[name].kind not in {"wording", "format"}),
    *FORMAT_FACTORS,
)


# ------------------------------------------------------------------------------------------------
# stats tables


def _shown(rows: Iterable[tuple[str, str, str]]) -> tuple[Column, ...]:
    return tuple(Column(*row) for row in rows)


SCORE_LEGEND = "expected answer: 0 = first option, 1 = last"
_ITEM = ("item_id", "item", "Probe item; the link opens its prompts")

STATS_TABLES: tuple[StatsTable, ...] = (
    StatsTable(
        "item_stats", "Per item", "item x axis (culture proxies)",
        "the variance decomposition (sums of squares, mean squares, variance components, F tests "
        "with Benjamini-Hochberg p-values), culture share, wording shares and the "
        "culture-vs-wording index with intervals, single-wording reliability and paraphrases "
        "needed, effect sizes, Friedman test and Kendall's W, ICC(2,1), Krippendorff's alpha "
        "across wordings and orders, the placebo comparison, the order decomposition and reversal "
        "shift, flip rates, Cramér's V, rank agreement with people, and the verdict",
        "table-items",
        _shown([
            _ITEM,
            ("axis", "axis", "Demographic axis whose proxies were compared"),
            ("verdict", "verdict", "Decision rule of the analysis (docs/statistics.md, Verdicts)"),
            ("cwi", "CWI", "Culture-vs-wording index s2_C / (s2_P + s2_CP)"),
            ("cwi_low", "CWI low", "95% generalised pivotal interval, lower end"),
            (
                "cwi_high",
                "CWI high",
                "95% generalised pivotal interval, upper end (inf: unbounded above)",
            ),
            ("culture_share", "culture", "Share of variance due to the proxy (s2_C / total)"),
            ("wording_share", "wording", "Share of variance due to the wording level (s2_P / total)"),
            ("wording_contrast_share", "wording x culture", "Share due to wording-by-proxy changes"),
            ("kendall_w", "Kendall W", "Agreement of the proxy ranking across wordings (Friedman)"),
            ("rho2_1", "Eρ²(1)", "Reliability of a culture comparison from a single wording (G-theory)"),
            ("paraphrases_needed_for_0_8", "wordings for 0.8", "Wordings to average for Eρ² >= 0.8"),
            ("p_proxy_bh", "p culture (BH)", "F_C = MS_C / MS_CP, Benjamini-Hochberg adjusted"),
            ("alpha_wording", "α wordings", "Krippendorff's alpha of the answers across wordings"),
            ("alpha_order", "α orders", "Krippendorff's alpha of the answers across option orders"),
            ("beats_placebo", "beats placebo", "Culture variance above the placebo personas' (CI > 0)"),
            ("nsr", "NSR", "Noise-to-human-signal ratio; >= 1: wording moves answers as much as countries"),
            ("order_share", "order", "Share of variance due to the option order as a third factor"),
            ("reversal_shift", "reversal shift", "Mean answer, canonical minus reversed option order"),
            ("cow_ratio", "COW", "Proxy flip rate / wording flip rate; > 1: culture flips answers more"),
        ]),
    ),
    StatsTable(
        "cell_stats", "Per item and proxy", "item x axis x proxy (every kind)",
        "mean score, wording and order spread, flip rates, answer entropy, low-mass, refusal and "
        "invalid rates",
        "table-cells",
        _shown([
            ("item_id", "item", "Probe item"),
            ("axis", "axis", "Demographic axis"),
            ("proxy_name", "proxy", "Proxy value"),
            ("proxy_kind", "kind", "culture, placebo or baseline"),
            ("mean_score", "mean answer", SCORE_LEGEND),
            ("wording_spread", "wording spread", "max - min of the mean answer over wordings"),
            ("order_spread", "order spread", "max - min of the mean answer over option orders"),
            ("wording_flip_rate", "wording flips", "Share of wording pairs whose most likely answer differs"),
            ("order_flip_rate", "order flips", "Share of order pairs whose most likely answer differs"),
            ("normalised_entropy", "entropy", "Entropy of the pooled answer distribution / log K"),
            ("low_option_mass_rate", "low mass", "Share of prompts with < 50% probability on the options"),
            ("refusal_rate", "refusals", "Share of refused answers"),
        ]),
    ),
    StatsTable(
        "wording_cells", "Per item, proxy and wording", "item x axis x proxy x wording",
        "mean score",
        shown=_shown([
            _ITEM,
            ("axis", "axis", "Demographic axis"),
            ("proxy", "proxy", "Proxy value id"),
            ("proxy_kind", "kind", "culture, placebo or baseline"),
            ("wording", "wording", "Paraphrase / framing"),
            ("mean_score", "mean answer", SCORE_LEGEND),
            ("n_rows", "prompts", "Prompts in the cell"),
        ]),
    ),
    StatsTable(
        "wording_stats", "Per item and wording", "item x axis x wording",
        "proxy flip rate, Cramér's V; with human data, rank agreement",
        shown=_shown([
            _ITEM,
            ("axis", "axis", "Demographic axis"),
            ("wording", "wording", "Paraphrase / framing"),
            ("n_proxies", "proxies", "Culture proxies asked with this wording"),
            ("proxy_flip_rate", "proxy flips", "Share of proxy pairs whose most likely answer differs"),
            ("cramers_v", "Cramér's V", "Association of answer and proxy under this wording"),
            ("cramers_v_corrected", "V corrected", "Bias-corrected Cramér's V (Bergsma 2013)"),
            ("human_spearman", "ρ with people", "Spearman correlation of the proxy means with people's"),
        ]),
    ),
    StatsTable(
        "information", "Information split", "item x axis",
        "the information split of the answer's entropy into culture, wording and order, each with "
        "its permutation null; Jensen-Shannon distance ratios",
    ),
    StatsTable(
        "position_bias", "Option position", "item x display position",
        "share chosen, RStd, KL from uniform, the PriDe prior",
    ),
    StatsTable(
        "language_effect", "Prompt language", "item x axis",
        "with several prompt languages: the culture x language decomposition",
        "table-language",
        _shown([
            ("item_id", "item", "Probe item"),
            ("axis", "axis", "Demographic axis"),
            ("languages", "languages", "Prompt languages compared"),
            ("culture_share", "culture", "Share of variance due to the proxy"),
            ("language_share", "language", "Share due to the prompt language, whatever the proxy"),
            ("interaction_share", "language x culture", "Share due to language-by-proxy changes"),
            ("p_language", "p language", "F_L = MS_L / MS_CL"),
        ]),
    ),
    StatsTable(
        "controls", "Controls", "item x axis",
        "culture against placebo proxies, and shifts from the no-proxy baseline",
    ),
    StatsTable(
        "contrasts", "Against the no-proxy baseline", "item x axis x culture proxy",
        "each proxy against the baseline, paired on the paraphrase, Holm within the item",
    ),
    StatsTable(
        "alignment", "Similarity to people per wording", "item x axis x proxy x wording",
        "with human data: 1 - Jensen-Shannon distance, Wasserstein representativeness",
    ),
    StatsTable(
        "alignment_summary", "Similarity to people", "item x axis x proxy",
        "with human data: MaxP, AvgP, MinP, CPS, specificity, steering effect, "
        "noise-to-human-signal ratio",
    ),
    StatsTable(
        "factor_stats", "Per item and factor", "item x axis x factor",
        "the N-way decomposition: `kind`, `effect` (fixed or random), `df`, `estimable` (false "
        "where the design leaves the term no degrees of freedom; its `var` and `share` are then "
        "empty, never 0), `ss`, `ms`, variance component `var` and `share` with 95% intervals, "
        "`raw_share`, `interval_extended`, `below_error` (the term's mean square lies under its "
        "error's and its interval's upper end is read from that mean square alone), `p_largest`, "
        "`balanced`, `method`",
        "table-factors",
        _shown([
            _ITEM,
            ("axis", "axis", "Demographic axis (crossed axes: 'region x religion')"),
            ("factor", "factor", "Declared factor, interaction of proxy axes, or 'culture x' a factor"),
            ("df", "df", "Degrees of freedom the factor adds (0: not estimable in this design)"),
            ("estimable", "estimable", "False where the design leaves the factor no degrees of freedom"),
            ("var", "variance", "Variance component of the expected answer (truncated at 0)"),
            ("share", "share", "Share of the answer variance"),
            ("share_low", "share low", "95% interval (generalised pivotal quantities), lower end"),
            ("share_high", "share high", "95% interval, upper end"),
            ("p_largest", "P(largest)", "Share of pivotal draws in which this factor explains the most"),
            ("method", "method", "anova: balanced cells; type I (Henderson III): incomplete design"),
        ]),
    ),
    StatsTable(
        "factor_verdicts", "Leading factor per item", "item x axis",
        "the dominant (or leading) factor, its share and interval, the runner-up, the residual "
        "share with its interval, `residual_largest` and the verdict text",
    ),
    StatsTable(
        "factor_summary", "Every declared factor, over items", "axis x factor",
        "study-level shares with intervals, `below_error`, `p_largest`, and the number of items "
        "each factor leads",
    ),
    StatsTable(
        "factor_levels", "Levels of the fixed factors", "item (or study) x axis x fixed factor x level",
        "each level's mean score and effect with a 95% interval "
        "([statistics.md](statistics.md#fixed-factors))",
    ),
    StatsTable(
        "nominal_stats", "Nominal items: Gini variation (CATANOVA), distances, modal agreement",
        "item x axis x factor (nominal items)",
        "`measure`; the Gini variation of the option distributions split over the factors by "
        "sequential sums of squares (`df`, `ss`, `ms`, `share`; Light & Margolin 1971), "
        "`gini_variation`, `js_between_proxies`, `js_between_wordings` (bits), "
        "`modal_agreement_proxies`, `modal_agreement_wordings`; the culture test, Light and "
        "Margolin's C (`c_statistic`, `c_df`, `p_chi2`) with its permutation p-value "
        "(`p_permutation`, `p_permutation_bh`) ([statistics.md](statistics.md#nominal-items))",
    ),
    StatsTable(
        "elicitation_stats", "How the answer is asked for", "scope x item x axis x proxy x level",
        "with several elicitation levels: per study, item and item x proxy (`scope`) and level, "
        "the agreement of the level's answer with the reference level's most likely option on "
        "the same prompt cell (Wilson interval), the Jensen-Shannon shift of the answer "
        "distribution (interval resampling wordings), refusal, abstention and invalid rates, "
        "similarity to people; per item the elicitation and culture shares, the test and the "
        "verdict ([statistics.md](statistics.md#elicitation))",
        "table-elicitation",
        _shown([
            ("scope", "scope", "study, item, or proxy (item x proxy)"),
            _ITEM,
            ("axis", "axis", "Demographic axis"),
            ("proxy", "proxy", "Proxy value (proxy scope)"),
            ("level", "level", "Elicitation level: first_token, constrained, written or open"),
            ("n_responses", "responses", "Responses at this level"),
            ("agreement", "agreement", "Share of prompt cells choosing the reference level's "
                                       "most likely option (written vs first_token: "
                                       "'My Answer is C', Wang et al. 2024)"),
            ("agreement_low", "agreement low", "95% Wilson interval over cells, lower end"),
            ("agreement_high", "agreement high", "95% Wilson interval over cells, upper end"),
            ("js_shift", "JS shift", "Jensen-Shannon distance (bits) of the pooled answer "
                                     "distribution from the reference level's"),
            ("refusal_rate", "refused", "Share of refused answers"),
            ("abstention_rate", "abstained", "Share of open answers no option could be assigned to"),
            ("invalid_rate", "invalid", "Share of answers that name no option"),
            ("elicitation_share", "elicitation share", "Share of the answer variance due to the "
                                                       "level (fixed effect, N-way model)"),
            ("culture_share", "culture share", "Share due to the proxy axes together"),
            ("culture_x_elicitation_share", "culture x elicitation",
             "Share due to level-by-proxy changes: the level changes the differences between "
             "cultures"),
            ("p_elicitation_bh", "p elicitation (BH)", "Test of the elicitation effect, "
                                                       "Benjamini-Hochberg adjusted"),
            ("verdict", "verdict", "elicitation-dominated: significant and larger than culture"),
        ]),
    ),
    StatsTable(
        "short_answer", "Short answers", "proxy x language x wording",
        "with short-answer items: the match rate against annotated answers with its item-bootstrap "
        "interval, the annotators' share of the matched answer, the refusal rate",
        "table-short-answer",
        _shown([
            ("proxy_name", "proxy", "The culture the question is about"),
            ("language", "language", "Language the question was asked in"),
            ("wording", "wording", "Paraphrase / framing @ language"),
            ("n_items", "items", "Questions in the cell"),
            ("match_rate", "match", "Share of answers holding an annotated answer, items weighing the same"),
            ("match_low", "match low", "95% item-bootstrap interval, lower end"),
            ("match_high", "match high", "95% item-bootstrap interval, upper end"),
            ("mean_match_share", "annotator share", "Share of annotators who gave the matched answer"),
            ("refusal_rate", "refusals", "Share of refused answers"),
        ]),
    ),
)  # fmt: skip
STATS_TABLE = {table.name: table for table in STATS_TABLES}
#: the stats tables' names, in the order the analysis returns them
STATS_TABLE_NAMES = tuple(table.name for table in STATS_TABLES)


def in_table_order(tables: Mapping[str, TableT]) -> dict[str, TableT]:
    """``tables`` in the registry's order; a name the registry does not declare is an error.

    Raises:
        KeyError: a table is not in :data:`STATS_TABLES` (it would be written but never shown).
    """
    unknown = sorted(set(tables) - set(STATS_TABLE))
    if unknown:
        raise KeyError(
            f"stats tables not declared in culture_probe.columns.STATS_TABLES: {unknown}"
        )
    return {name: tables[name] for name in STATS_TABLE_NAMES if name in tables}


def column_labels(table: str) -> dict[str, tuple[str, str]]:
    """The report's ``{column: (label, description)}`` for one stats table's shown columns.

    Example:
        >>> column_labels("factor_stats")["p_largest"][0]
        'P(largest)'
    """
    return {column.name: (column.label, column.description) for column in STATS_TABLE[table].shown}


# ------------------------------------------------------------------------------------------------
# docs


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table, one line per row (the docs' reference tables).

    Example:
        >>> print(markdown_table(["a", "b"], [["1", "x | y"]]))
        | a | b |
        |---|---|
        | 1 | x \\| y |
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def docs_tables() -> dict[str, str]:
    """The reference tables of ``docs/run-directory.md``, by the marker that encloses each."""
    return {
        "plan-columns": markdown_table(
            ["column", "what it holds"], ([f"`{c.name}`", c.description] for c in PLAN_SCHEMA)
        ),
        "response-columns": markdown_table(
            ["column", "what it holds"], ([f"`{c.name}`", c.description] for c in RESPONSE_SCHEMA)
        ),
        "design-factors": markdown_table(
            ["factor", "study key", "kind", "effect", "what varies"],
            (
                [
                    f"`{f.name}`",
                    f"`{f.study_key}`",
                    f.kind,
                    "fixed" if f.fixed else "random",
                    f.description,
                ]
                for f in DESIGN_FACTORS
            ),
        ),
        "stats-tables": markdown_table(
            ["table", "one row per", "holds"],
            ([f"`{t.name}`", t.grain, t.holds] for t in STATS_TABLES),
        ),
    }


DOCS_MARKER = "<!-- registry:{} -->"
DOCS_END = "<!-- /registry -->"


def with_docs_tables(text: str) -> str:
    """``text`` (a docs page) with each ``<!-- registry:NAME -->`` block set to its table.

    Run ``python -m culture_probe.columns docs/run-directory.md`` after changing the registry;
    ``tests/test_registry.py`` fails while the page and the registry differ.
    """
    for name, table in docs_tables().items():
        start = DOCS_MARKER.format(name)
        if start not in text:
            continue
        before, rest = text.split(start, 1)
        _, after = rest.split(DOCS_END, 1)
        text = f"{before}{start}\n{table}\n{DOCS_END}{after}"
    return text


if __name__ == "__main__":
    import sys
    from pathlib import Path

    for page in map(Path, sys.argv[1:]):
        page.write_text(with_docs_tables(page.read_text(encoding="utf-8")), encoding="utf-8")
