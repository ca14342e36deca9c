"""Is the difference between two models larger than the wording noise? Model x wording tests.

Per item, on the paired differences ``d`` (one per prompt: wording x replicate, the replicates being
the item's culture proxies and option orders):

- the model effect against the wording noise, F_model = MS_model / MS_model x wording with wording
  random (the t test of the per-wording mean differences, squared; df 1 and W - 1);
- the model x wording interaction, F_interaction = MS_model x wording / MS_residual: whether the
  difference between the models itself changes with the wording more than from one proxy or order
  to the next (a one-way ANOVA of ``d`` over wordings; df W - 1 and N - W).

For two models and a balanced design these are the two-way (model x wording) ANOVA's F ratios with the
replicates' own effects removed by the pairing. Benjamini-Hochberg runs across items. Overall, the
same ratios pooled over items: F_model tests that every item's mean difference is 0 (df I and
sum(W_i - 1)); F_interaction pools the interaction and residual sums of squares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis import benjamini_hochberg

CULTURE = "culture"


def interaction_table(pairs: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """One row per item (culture proxies): the sums of squares, F ratios and BH-adjusted p-values.

    Columns: ``item_id, model_a, model_b, n_wordings, n_prompts, ss_model, ss_interaction,
    ss_residual, df_interaction, df_residual, f_model, p_model, f_interaction, p_interaction,
    p_model_bh, p_interaction_bh``. The decision whether the models differ is the
    ``significant`` column of the item differences (which can also ask for a smallest difference
    that matters); ``f_model`` here is its test with that smallest difference at 0.
    """
    culture = pairs.loc[pairs["proxy_kind"] == CULTURE]
    rows = [
        {"item_id": item, "model_a": labels[0], "model_b": labels[1], **_item_anova(group)}
        for item, group in culture.groupby("item_id", sort=True)
    ]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for name in ("model", "interaction"):
        table[f"p_{name}_bh"] = benjamini_hochberg(table[f"p_{name}"].to_numpy(dtype=np.float64))
    return table


def _item_anova(group: pd.DataFrame) -> dict[str, float | int]:
    parts = _sums_of_squares(group)
    n_wordings, n_prompts = int(parts["n_wordings"]), int(parts["n_prompts"])
    df_interaction, df_residual = n_wordings - 1, n_prompts - n_wordings
    ms_interaction = _mean_square(parts["ss_interaction"], df_interaction)
    f_model = _ratio(parts["ss_model"], ms_interaction)
    f_interaction = _ratio(ms_interaction, _mean_square(parts["ss_residual"], df_residual))
    return {
        "n_wordings": n_wordings,
        "n_prompts": n_prompts,
        "ss_model": parts["ss_model"],
        "ss_interaction": parts["ss_interaction"],
        "ss_residual": parts["ss_residual"],
        "df_interaction": df_interaction,
        "df_residual": df_residual,
        "f_model": f_model,
        "p_model": _f_p(f_model, 1, df_interaction),
        "f_interaction": f_interaction,
        "p_interaction": _f_p(f_interaction, df_interaction, df_residual),
    }


def _sums_of_squares(group: pd.DataFrame) -> dict[str, float]:
    """SS of the paired differences: the mean (model), between wordings, within wordings.

    They are the two-way ANOVA's SS of the cell scores divided by 2: with two models the model
    effect is +-d/2 around the cell mean.
    """
    d = group["difference"].to_numpy(dtype=np.float64)
    by_wording = group.groupby("wording", sort=True)["difference"]
    means, counts = by_wording.mean().to_numpy(), by_wording.size().to_numpy()
    grand = float(d.mean())
    within = float(((d - group["wording"].map(by_wording.mean()).to_numpy()) ** 2).sum())
    return {
        "n_wordings": float(len(means)),
        "n_prompts": float(len(d)),
        "ss_model": float(len(d) * grand**2) / 2,
        "ss_interaction": float((counts * (means - grand) ** 2).sum()) / 2,
        "ss_residual": within / 2,
    }


def overall_tests(pairs: pd.DataFrame) -> dict[str, float]:
    """The model effect and the interaction pooled over items (see the module docstring).

    F_model: every item's mean difference is 0, against the spread of the per-wording means about
    their item's mean (the F test of ``wording_mean ~ 0 + C(item)``, all coefficients 0).
    """
    culture = pairs.loc[pairs["proxy_kind"] == CULTURE]
    wording_means = culture.groupby(["item_id", "wording"], sort=True)["difference"].mean()
    item_means = wording_means.groupby(level="item_id").transform("mean")
    n_items = int(wording_means.index.get_level_values("item_id").nunique())
    df_noise = len(wording_means) - n_items
    per_item = wording_means.groupby(level="item_id")
    ss_means = float((per_item.size() * per_item.mean() ** 2).sum())
    ss_noise = float(((wording_means - item_means) ** 2).sum())
    f_model = _ratio(_mean_square(ss_means, n_items), _mean_square(ss_noise, df_noise))
    parts = [_sums_of_squares(group) for _, group in culture.groupby("item_id", sort=True)]
    df_interaction = sum(p["n_wordings"] - 1 for p in parts)
    df_residual = sum(p["n_prompts"] - p["n_wordings"] for p in parts)
    ss_interaction = sum(p["ss_interaction"] for p in parts)
    ss_residual = sum(p["ss_residual"] for p in parts)
    f_interaction = _ratio(
        _mean_square(ss_interaction, df_interaction), _mean_square(ss_residual, df_residual)
    )
    return {
        "n_items": n_items,
        "f_model": f_model,
        "df_model": n_items,
        "df_wording": df_noise,
        "p_model": _f_p(f_model, n_items, df_noise),
        "f_interaction": f_interaction,
        "df_interaction": df_interaction,
        "df_residual": df_residual,
        "p_interaction": _f_p(f_interaction, df_interaction, df_residual),
    }


def _mean_square(sum_of_squares: float, degrees_of_freedom: float) -> float:
    """SS / df, NaN without degrees of freedom (one wording, or one prompt per wording)."""
    return sum_of_squares / degrees_of_freedom if degrees_of_freedom > 0 else np.nan


def _ratio(numerator: float, denominator: float) -> float:
    if not np.isfinite(denominator) or denominator <= 0:
        return np.inf if numerator > 0 and denominator == 0 else np.nan
    return float(numerator / denominator)


def _f_p(f: float, df_numerator: float, df_denominator: float) -> float:
    if np.isnan(f) or df_numerator <= 0 or df_denominator <= 0:
        return np.nan
    return float(stats.f.sf(f, df_numerator, df_denominator))
