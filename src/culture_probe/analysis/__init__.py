"""The robustness statistics: is a model's answer about a culture driven by the culture or the wording?

Pure functions over the tidy responses table (see :mod:`culture_probe.columns`); definitions and
sources are in ``docs/statistics.md``. The entry points:

- :func:`tidy_responses` joins the plan with the responses and adds ``score``;
- :func:`analyze` returns an :class:`AnalysisResult` with the tables below, a JSON summary and
  plain-English headline sentences;
- :func:`format_terminal_summary` renders a one-screen summary;
- the building blocks the model comparison (:mod:`culture_probe.compare`) reuses:
  :func:`alignment_tables`, :func:`benjamini_hochberg`, :func:`bias_corrected_interval`,
  :func:`block_ranks`, :func:`friedman`, :func:`probability_matrix`. Other packages import these
  names from here, never from the private modules, which stay free to change.

Tables (written by the caller to ``stats/<name>.parquet``):

``item_stats`` (one row per item x axis, culture proxies only)
    ``item_id, axis, scale, measure`` (what the row's statistics are computed on: the expected
    ordinal position; for a nominal item it says they are not meaningful), ``n_proxies,
    n_wordings, n_replicates``; ``ss_/df_/ms_`` for ``proxy``,
    ``wording``, ``interaction``, ``residual`` (within cells) and ``error`` (the interaction's
    error term MS_E': within cells, less the context effects common to every cell); ``var_proxy,
    var_wording, var_interaction, var_residual`` (random-effects components; with one replicate
    the residual is NaN and sits in the interaction); ``f_proxy`` = MS_C/MS_CP, ``f_wording`` =
    MS_P/MS_CP, ``f_interaction`` = MS_CP/MS_E' with ``p_*`` and Benjamini-Hochberg
    ``p_*_bh``; ``culture_share`` (+ ``_low``, ``_high``: pivotal draws of every component, the
    lower end above 0 exactly when the culture F test rejects, ``_anova.culture_share_interval``),
    ``wording_share``,
    ``wording_contrast_share``, ``residual_share``, ``cwi`` (+ ``cwi_low``, ``cwi_high`` from the
    same draws, ``inf`` where unbounded above, ``_anova.cwi_interval``); ``rho2_1`` = (F - 1) / (F - 1 + P)
    with F = MS_C / MS_CP (+ ``_low``, ``_high``: the noncentral-F interval for the study's own
    proxies, ``_anova.rho2_interval``; W's interval resamples wordings),
    ``rho2_at_n_wordings``, ``paraphrases_needed_for_0_8`` = ceil(4 / theta), theta = (F - 1) / P
    (NaN, with ``paraphrases_reachable`` False, when theta is 0 or more than 100 wordings would be
    needed); the untruncated ``raw_var_proxy, raw_var_wording, raw_var_interaction`` and
    ``raw_culture_share, raw_wording_share, raw_wording_contrast_share, raw_residual_share,
    raw_rho2_1`` (negative where the truncated statistic is 0; the study-level means average
    them, docs/statistics.md#study-level-intervals); ``intervals_extended`` (the statistics whose
    bootstrap interval was widened to reach its estimate, or whose F-based interval, never
    widened, misses it);
    ``eta2``, ``partial_eta2``, ``omega2``; ``friedman_stat``,
    ``friedman_p``, ``kendall_w`` (+ CI); ``icc2_1``; ``alpha_wording``, ``alpha_order``
    (Krippendorff, ordinal or nominal by the item's scale); the placebo comparison
    ``placebo_var_proxy, placebo_f_proxy, placebo_p_proxy, placebo_culture_share,
    placebo_raw_culture_share, placebo_var_wording, placebo_var_interaction,
    placebo_var_residual`` (the placebo's own decomposition, which its study-level share pools),
    ``culture_minus_placebo`` (+ ``_low``, ``_high``), ``beats_placebo``; ``nsr`` with a reference;
    the proxy x wording x order decomposition (replicates = the responses of a proxy x wording x
    order cell, seeds and format variants together;
    docs/statistics.md#culture-against-wording-the-variance-decomposition): ``n_orders``,
    ``n_cell_replicates``, ``n_seeds`` (distinct seeds), ``ss_`` and ``var_`` for ``order``,
    ``proxy_order``, ``wording_order``, ``proxy_wording_order`` and ``seed`` (the within-cell
    term; with one replicate ``var_seed`` is NaN and sits in the three-way term),
    ``order_share`` = (s2_O + s2_CO + s2_PO) / total, ``non_order_share`` =
    (s2_C + s2_P + s2_CP) / total, ``f_order`` = MS_O / MS_(order x cell), ``p_order``,
    ``p_order_bh``; the reversal shift (docs/statistics.md#option-order) ``n_matched_cells,
    canonical_mean, reversed_mean,
    reversal_shift`` (mean of
    z_canonical - z_reversed), ``reversal_shift_sd, reversal_p`` (Wilcoxon), ``reversal_p_bh``,
    ``order_kappa`` (Cohen's kappa, canonical vs reversed modal answers); flips
    (docs/statistics.md#flips-and-spreads)
    ``proxy_flip_rate`` (mean over wordings of FR^C), ``mean_wording_flip_rate``,
    ``mean_order_flip_rate``, ``cow_ratio`` = mean_p FR^C / mean_c FR^P; ``cramers_v`` and the
    bias-corrected ``cramers_v_corrected`` (Bergsma 2013), means over wordings
    (docs/statistics.md#flips-and-spreads); with a
    reference, ``human_spearman, human_spearman_p, human_kendall, human_kendall_p`` of the proxy
    means against the human means and ``human_spearman_wording_min``, ``_median``, ``_max`` over
    wordings (docs/statistics.md#alignment-with-human-answers); ``verdict`` ("order-dominated",
    "culture-dominant", "wording-dominated",
    "mixed", "no culture effect", "nominal"; the rule is in ``_summary.verdicts``: "order-dominated" when the
    order test is significant after BH and ``order_share`` > ``non_order_share``).
``cell_stats`` (item x axis x proxy, every kind of proxy)
    ``proxy_kind, scale, n_options, n_rows, mean_score, n_wordings, n_orders, wording_spread,
    order_spread, wording_flip_rate, majority_disagreement, order_flip_rate, normalised_entropy,
    low_option_mass_rate, refusal_rate, invalid_rate``.
``wording_cells`` (item x axis x proxy x wording)
    ``proxy_kind, mean_score, n_rows``.
``wording_stats`` (item x axis x wording, culture proxies)
    ``n_proxies, proxy_flip_rate`` (FR^C_ip), ``n_responses, cramers_v, cramers_v_corrected``;
    with a reference ``n_ranked, human_spearman, human_kendall``.
``information`` (item x axis, culture proxies)
    ``entropy``; ``info_culture``, ``info_wording``, ``info_order`` each with ``_null``,
    ``_excess``, ``_p``; ``noise``; ``culture_info_share``; ``js_between_proxies``,
    ``js_between_wordings``, ``js_ratio`` (bits).
``position_bias`` (item x display position)
    ``choice_share, n_responses, n_orders, rstd, kl_from_uniform``; the PriDe prior
    ``pride_prior`` = softmax_j(mean log P(position j)) and its entropy ``pride_entropy`` (bits;
    Zheng et al. 2024).
``controls`` (item x axis)
    ``culture_var_proxy`` and the placebo columns of ``item_stats``; ``culture_mean_score,
    baseline_mean_score, culture_shift_from_baseline, placebo_shift_from_baseline, shift_ratio``.
``contrasts`` (item x axis x culture proxy; with a no-proxy baseline)
    ``matched_on, n_wordings, mean_difference, sd_difference, cohen_dz, t, p, p_holm,
    item_p_proxy_bh, significant``: each proxy against the baseline, paired on the paraphrase,
    Holm within the item, significant only where the item's culture test is
    (docs/statistics.md#intervals-and-multiple-comparisons).
``alignment`` (item x axis x proxy x wording; with a reference)
    ``sim_jsd, representativeness``.
``factor_stats`` (item x axis x factor, culture proxies; :mod:`culture_probe.analysis._factorial`)
    The N-way decomposition over every declared factor: each proxy axis (``axis_<axis>``
    columns, derived from ``proxy`` for plans without them), their interactions, each context
    factor with more than one level (paraphrase, framing, enumerator, separator, instruction,
    shots, order, language, seed), every pair of those ("enumerator x order", kind "context
    interaction"), "culture x <factor>", and the ``residual`` (higher-order interactions and
    noise): ``kind``, ``effect`` ("fixed" for the format factors, order, language and their
    pairs; "random" otherwise; a fixed term's ``var`` is the variance of its effects,
    sum(alpha^2) / L), ``columns, n_levels, df, ss, ms, var`` (+ ``_low``, ``_high``), ``share``
    (+ ``_low``, ``_high``: from the draws of the untruncated shares, clipped to [0, 1], never
    widened), ``raw_share`` (the untruncated share), ``interval_extended`` (the share lies outside
    its interval), ``below_error`` (the term's mean square lies under its error's, every draw of
    its untruncated share at or below 0: its ``share_high`` and ``var_high`` are read from its own
    mean square alone), ``p_largest`` (share of draws in which the factor explains the most),
    ``n_rows, balanced, method`` ("anova" on balanced
    cells, "type I (Henderson III)" on incomplete designs such as a budgeted fraction). A factor
    the design confounds with earlier ones has ``df`` 0 and NaN components.
``factor_verdicts`` (item x axis)
    ``dominant_factor, dominant_share`` (+ ``_low``, ``_high``), ``p_largest, runner_up,
    residual_share`` (+ ``_low``, ``_high``), ``residual_largest`` (the residual outweighs every
    factor), ``verdict`` ("<factor> dominates" when largest in >= 95% of draws, else
    "<factor> leads (largest in x% of draws)").
``factor_summary`` (axis x factor)
    ``kind, effect, n_items, share`` (mean of the items' untruncated shares, clipped to [0, 1])
    ``, share_low, share_high`` (Student-t interval over items; one item: its own interval),
    ``interval_extended`` (False), ``below_error`` (the pooled interval lies below 0; its upper
    end is the items' own-mean-square bounds over their totals), ``p_largest, n_items_leading``.
    ``summary.json`` carries the same under ``"factors"``, with ``residual_largest`` and the
    study-level ``levels`` per axis.
``factor_levels`` (scope x item x axis x fixed factor x level)
    ``scope`` ("item", or "study" with ``item_id`` empty), ``factor, level, n_rows, n_items,
    mean`` (mean score at the level), ``effect`` (level mean minus the mean of the level means)
    ``, effect_low, effect_high`` (95% t interval; per item the error is what the random facets
    add, on Satterthwaite ``df_error``; per study a t interval over items).
``nominal_stats`` (item x axis x factor, nominal items only; :mod:`culture_probe.analysis._nominal`)
    ``measure`` ("Gini variation (CATANOVA)"), ``factor, kind, columns, df, ss, ms, share``: the
    Gini variation of the option distributions split over the factors of ``factor_stats`` by
    sequential sums of squares (Light & Margolin 1971), the residual last; per item
    ``gini_variation, n_rows, n_options``, ``js_between_proxies, js_between_wordings`` (bits) and
    ``modal_agreement_proxies, modal_agreement_wordings``.
``elicitation_stats`` (scope x item x axis x proxy x elicitation level; with several levels;
:mod:`culture_probe.analysis._elicitation`)
    ``scope`` ("study", "item", "proxy"), ``level, reference_level, n_responses, n_answered,
    refusal_rate, abstention_rate, invalid_rate``; ``n_pairs, agreement`` (+ ``_low``, ``_high``:
    Wilson) of the level's answer with the reference level's most likely option on the same
    prompt cell; ``js_shift`` (+ ``_low``, ``_high``: wordings resampled), the Jensen-Shannon
    distance (bits) from the reference level's pooled distribution; with a reference
    ``human_similarity`` (AvgP) and ``human_similarity_change``; per item ``measure,
    elicitation_share`` (+ ``_low``, ``_high``), ``culture_share, culture_x_elicitation_share,
    test, statistic, df_effect, df_error, p_elicitation, p_elicitation_bh, verdict``
    ("elicitation-dominated": significant after BH and larger than culture's share).
``alignment_summary`` (item x axis x proxy; with a reference)
    ``n_wordings, max_p, avg_p, min_p, cps, specificity, specificity_p, specificity_item_p,
    avg_representativeness, baseline_sim, steering_effect, nsr``.
"""

from culture_probe.analysis._alignment import alignment_tables
from culture_probe.analysis._analyze import AnalysisResult, analyze
from culture_probe.analysis._anova import block_ranks, friedman
from culture_probe.analysis._claims import Claim, Condition, Figure, Source, Test
from culture_probe.analysis._consistency import assert_consistent, cell_problems, claim_problems
from culture_probe.analysis._items import benjamini_hochberg, bias_corrected_interval
from culture_probe.analysis._terminal import SummaryCell, format_terminal_summary, summary_cells
from culture_probe.analysis._tidy import probability_matrix, tidy_responses

__all__ = [
    "AnalysisResult",
    "Claim",
    "Condition",
    "Figure",
    "Source",
    "SummaryCell",
    "Test",
    "alignment_tables",
    "analyze",
    "assert_consistent",
    "benjamini_hochberg",
    "bias_corrected_interval",
    "block_ranks",
    "cell_problems",
    "claim_problems",
    "format_terminal_summary",
    "friedman",
    "probability_matrix",
    "summary_cells",
    "tidy_responses",
]
