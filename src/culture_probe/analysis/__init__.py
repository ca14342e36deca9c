"""The robustness statistics: is a model's answer about a culture driven by the culture or the wording?

Pure functions over the tidy responses table (see :mod:`culture_probe.columns`); definitions and
sources are in ``research/robustness.md``. The entry points:

- :func:`tidy_responses` joins the plan with the responses and adds ``score``;
- :func:`analyze` returns an :class:`AnalysisResult` with the tables below, a JSON summary and
  plain-English headline sentences;
- :func:`format_terminal_summary` renders a one-screen summary.

Tables (written by the caller to ``stats/<name>.parquet``):

``item_stats`` (one row per item x axis, culture proxies only)
    ``item_id, axis, scale, n_proxies, n_wordings, n_replicates``; ``ss_/df_/ms_`` for ``proxy``,
    ``wording``, ``interaction``, ``residual``; ``var_proxy, var_wording, var_interaction,
    var_residual`` (random-effects components; with one replicate the residual is NaN and sits in
    the interaction); ``f_proxy`` = MS_C/MS_CP, ``f_wording`` = MS_P/MS_CP, ``f_interaction`` =
    MS_CP/MS_E with ``p_*`` and Benjamini-Hochberg ``p_*_bh``; ``culture_share`` (+ ``_low``,
    ``_high``), ``wording_share``, ``wording_contrast_share``, ``residual_share``, ``cwi`` (+
    ``cwi_low``, ``cwi_high``); ``rho2_1`` (+ CI), ``rho2_at_n_wordings``,
    ``paraphrases_needed_for_0_8``; ``eta2``, ``partial_eta2``, ``omega2``; ``friedman_stat``,
    ``friedman_p``, ``kendall_w`` (+ CI); ``icc2_1``; ``alpha_wording``, ``alpha_order``
    (Krippendorff, ordinal or nominal by the item's scale); the placebo comparison
    ``placebo_var_proxy, placebo_f_proxy, placebo_p_proxy, placebo_culture_share,
    culture_minus_placebo`` (+ ``_low``, ``_high``), ``beats_placebo``; ``nsr`` with a reference;
    ``verdict`` ("culture-dominant", "wording-dominated", "mixed", "no culture effect").
``cell_stats`` (item x axis x proxy, every kind of proxy)
    ``proxy_kind, scale, n_options, n_rows, mean_score, n_wordings, n_orders, wording_spread,
    order_spread, wording_flip_rate, majority_disagreement, order_flip_rate, normalised_entropy,
    low_option_mass_rate, refusal_rate, invalid_rate``.
``wording_cells`` (item x axis x proxy x wording)
    ``proxy_kind, mean_score, n_rows``.
``information`` (item x axis, culture proxies)
    ``entropy``; ``info_culture``, ``info_wording``, ``info_order`` each with ``_null``,
    ``_excess``, ``_p``; ``noise``; ``culture_info_share``; ``js_between_proxies``,
    ``js_between_wordings``, ``js_ratio`` (bits).
``position_bias`` (item x display position)
    ``choice_share, n_responses, n_orders, rstd, kl_from_uniform``.
``controls`` (item x axis)
    ``culture_var_proxy`` and the placebo columns of ``item_stats``; ``culture_mean_score,
    baseline_mean_score, culture_shift_from_baseline, placebo_shift_from_baseline, shift_ratio``.
``alignment`` (item x axis x proxy x wording; with a reference)
    ``sim_jsd, representativeness``.
``alignment_summary`` (item x axis x proxy; with a reference)
    ``n_wordings, max_p, avg_p, min_p, cps, specificity, specificity_p, specificity_item_p,
    avg_representativeness, baseline_sim, steering_effect, nsr``.
"""

from culture_probe.analysis._analyze import AnalysisResult, analyze
from culture_probe.analysis._terminal import format_terminal_summary
from culture_probe.analysis._tidy import tidy_responses

__all__ = ["AnalysisResult", "analyze", "format_terminal_summary", "tidy_responses"]
