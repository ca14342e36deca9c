"""Synthetic studies with planted effects, for checking the analysis and benchmarking it.

A latent ordinal position mu in [0, 1] is the sum of an item level, a culture effect per proxy, a
wording effect per paraphrase, a culture x wording interaction and seed noise; the model's answer
distribution is a discretised bell around mu, optionally pulled towards the first displayed option
(position bias). With elicitation levels (:data:`culture_probe.columns.ELICITATION_LEVELS`) each
level adds its own shift of the latent position per item, and the answers are written as a real run
writes them: ``first_token`` the distribution, ``constrained`` the distribution with a sampled
label, ``written`` and ``open`` one-hot on a sampled option, some of them refused, abstained
(``open``) or invalid (``written``). Nothing here is used by :func:`analyze`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from culture_probe.columns import WRITTEN_LEVELS

BELL_WIDTH = 0.2


@dataclass(frozen=True)
class PlantedEffects:
    """Standard deviations of the planted effects on the latent position (0-1 scale).

    Attributes:
        culture: between culture proxies.
        wording: between paraphrases (the same shift for every proxy).
        interaction: proxy x paraphrase (changes the proxy contrasts).
        noise: per response, e.g. sampling at temperature > 0.
        placebo: between placebo proxies.
        position_bias: probability mass moved to the first displayed option.
        elicitation: between elicitation levels (a shift per item and level).
    """

    culture: float = 0.0
    wording: float = 0.0
    interaction: float = 0.0
    noise: float = 0.0
    placebo: float = 0.0
    position_bias: float = 0.0
    elicitation: float = 0.0


@dataclass(frozen=True)
class Outcomes:
    """How often a generated answer (``written`` or ``open``) is not an option.

    Attributes:
        refused: share of refusals, at both generated levels.
        abstained: share of open answers the mapper could not assign to one option.
        invalid: share of written answers that name no option.
    """

    refused: float = 0.05
    abstained: float = 0.10
    invalid: float = 0.03


def simulate_study(
    effects: PlantedEffects,
    *,
    n_items: int = 10,
    n_proxies: int = 6,
    n_paraphrases: int = 4,
    n_orders: int = 2,
    n_seeds: int = 1,
    n_options: int = 4,
    n_placebos: int = 0,
    baseline: bool = False,
    scale: str = "ordinal",
    seed: int = 0,
    elicitation_levels: tuple[str, ...] = (),
    outcomes: Outcomes = Outcomes(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plan and its responses, with the columns of :mod:`culture_probe.columns`.

    Args:
        effects: what to plant.
        n_items: items; each gets its own effects, so items are independent replicates.
        n_proxies: culture proxies (axis "region").
        n_paraphrases: paraphrases (framing "imagine"; wording "p1/imagine", ...).
        n_orders: option orders: canonical, reversed, then cyclic shifts.
        n_seeds: responses per prompt.
        n_options: answer options K.
        n_placebos: placebo proxies (axis "placebo"), under the same wordings.
        baseline: add the no-proxy prompt (axis "none", framing "none").
        scale: "ordinal" or "nominal".
        seed: random seed.
        elicitation_levels: elicitation levels crossed with everything else (an ``elicitation``
            plan column); empty: no such column, every answer a first-token distribution.
        outcomes: how often generated answers are refused, abstained or invalid.

    Returns:
        ``(plan, responses)``.
    """
    rng = np.random.default_rng(seed)
    proxies = [(f"C{c:02d}", "culture", "region") for c in range(n_proxies)]
    proxies += [(f"house{q}", "placebo", "placebo") for q in range(n_placebos)]
    n_all = len(proxies)
    kind = np.array([k for _, k, _ in proxies])
    item_level = rng.uniform(0.3, 0.7, size=(n_items, 1, 1))
    proxy_sd = np.where(kind == "culture", effects.culture, effects.placebo)
    proxy_effect = rng.normal(size=(n_items, n_all, 1)) * proxy_sd[None, :, None]
    wording_effect = rng.normal(0, effects.wording, size=(n_items, 1, n_paraphrases))
    interaction = rng.normal(0, effects.interaction, size=(n_items, n_all, n_paraphrases))
    latent = item_level + proxy_effect + wording_effect + interaction
    frame = _grid(latent, proxies, n_orders, n_seeds)
    if baseline:
        base = item_level + rng.normal(0, effects.wording, size=(n_items, 1, n_paraphrases))
        extra = _grid(base, [("none", "baseline", "none")], n_orders, n_seeds)
        extra["framing"] = "none"
        frame = pd.concat([frame, extra], ignore_index=True)
    if elicitation_levels:
        frame = _with_levels(frame, elicitation_levels, effects.elicitation, n_items, rng)
    frame["latent"] += rng.normal(0, effects.noise, size=len(frame))
    orders = _orders(n_orders, n_options)
    display = np.stack([orders[o] for o in frame["order_code"]])
    probs = _answer_distribution(frame["latent"].to_numpy(), display, n_options, effects)
    plan = _plan(frame, orders, n_options, scale)
    responses = _responses(frame, probs)
    if elicitation_levels:
        plan.insert(plan.columns.get_loc("language") + 1, "elicitation", frame["elicitation"])
        responses = _elicited(responses, frame["elicitation"].to_numpy(), outcomes, rng)
    return plan, responses


def _with_levels(
    frame: pd.DataFrame,
    levels: tuple[str, ...],
    spread: float,
    n_items: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Every row once per elicitation level, its latent position shifted by the level's effect
    on the item."""
    shift = rng.normal(0, spread, size=(n_items, len(levels)))
    item = frame["item_id"].str[1:].astype(int).to_numpy()
    copies = []
    for code, level in enumerate(levels):
        copy = frame.assign(elicitation=level)
        copy["latent"] = copy["latent"] + shift[item, code]
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def _elicited(
    responses: pd.DataFrame, levels: np.ndarray, outcomes: Outcomes, rng: np.random.Generator
) -> pd.DataFrame:
    """The responses as each level writes them: a sampled label for ``constrained``, one-hot
    sampled answers for the generated levels, with their refusals, abstentions and invalid
    answers (no distribution, answer -1)."""
    probs = np.stack(responses["probs"].to_numpy())
    cumulative = probs.cumsum(axis=1)
    draws = rng.uniform(size=(len(probs), 1))
    sampled = np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)
    generated = np.isin(levels, WRITTEN_LEVELS)
    roll = rng.uniform(size=len(probs))
    outcome = np.full(len(probs), "answered", dtype=object)
    outcome[generated & (roll < outcomes.refused)] = "refused"
    late = roll >= outcomes.refused
    outcome[(levels == "open") & late & (roll < outcomes.refused + outcomes.abstained)] = (
        "abstained"
    )
    outcome[(levels == "written") & late & (roll < outcomes.refused + outcomes.invalid)] = "invalid"
    one_hot = np.eye(probs.shape[1])[sampled]
    answered = outcome == "answered"
    out = responses.copy()
    out["answer"] = np.where(levels == "first_token", probs.argmax(axis=1), sampled)
    out["answer"] = np.where(answered, out["answer"], -1)
    written = np.where(generated[:, None], one_hot, probs)
    out["probs"] = [list(written[row]) if answered[row] else [] for row in range(len(probs))]
    out["outcome"] = outcome
    out["generated"] = np.where(generated, [f"option {k}" for k in sampled], "")
    rule = np.where(levels == "open", "synthetic", "parse_answer")
    out["mapped_by"] = np.where(generated & answered, rule, "")
    return out


def _grid(
    latent: np.ndarray, proxies: list[tuple[str, str, str]], n_orders: int, n_seeds: int
) -> pd.DataFrame:
    n_items, n_proxies, n_paraphrases = latent.shape
    shape = (n_items, n_proxies, n_paraphrases, n_orders, n_seeds)
    item, proxy, para, order, seed = (a.ravel() for a in np.indices(shape))
    names = np.array([p for p, _, _ in proxies])
    return pd.DataFrame(
        {
            "item_id": np.char.add("Q", item.astype(str)),
            "proxy": names[proxy],
            "proxy_kind": np.array([k for _, k, _ in proxies])[proxy],
            "axis": np.array([a for _, _, a in proxies])[proxy],
            "paraphrase": np.char.add("p", (para + 1).astype(str)),
            "framing": "imagine",
            "order_code": order,
            "seed": seed,
            "latent": latent[item, proxy, para],
        }
    )


def _orders(n_orders: int, n_options: int) -> list[np.ndarray]:
    canonical = np.arange(n_options)
    orders = [canonical, canonical[::-1]]
    orders += [np.roll(canonical, -shift) for shift in range(1, n_options)]
    return orders[:n_orders]


def _order_names(n_orders: int) -> list[str]:
    return (["canonical", "reversed"] + [f"cyclic{s}" for s in range(1, 64)])[:n_orders]


def _answer_distribution(
    latent: np.ndarray, display: np.ndarray, n_options: int, effects: PlantedEffects
) -> np.ndarray:
    positions = np.arange(n_options) / (n_options - 1)
    logits = -((positions[None, :] - latent[:, None]) ** 2) / (2 * BELL_WIDTH**2)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    first_shown = np.zeros_like(probs)
    first_shown[np.arange(len(probs)), display[:, 0]] = 1.0
    return np.asarray((1 - effects.position_bias) * probs + effects.position_bias * first_shown)


def _plan(
    frame: pd.DataFrame, orders: list[np.ndarray], n_options: int, scale: str
) -> pd.DataFrame:
    names = _order_names(len(orders))
    labels = [chr(ord("A") + k) for k in range(n_options)]
    texts = [f"option {k}" for k in range(n_options)]
    display_lists = [order.tolist() for order in orders]
    ids = np.char.mod("%016x", np.arange(len(frame)))
    return pd.DataFrame(
        {
            "prompt_id": ids,
            "row": np.arange(len(frame)),
            "study": "synthetic",
            "item_id": frame["item_id"],
            "wvs_id": frame["item_id"],
            "topic": "values",
            "scale": scale,
            "n_options": n_options,
            "axis": frame["axis"],
            "proxy": frame["proxy"],
            "proxy_name": frame["proxy"],
            "proxy_kind": frame["proxy_kind"],
            "paraphrase": frame["paraphrase"],
            "framing": frame["framing"],
            "wording": frame["paraphrase"] + "/" + frame["framing"],
            "order": np.array(names)[frame["order_code"].to_numpy()],
            "display_to_canonical": [display_lists[o] for o in frame["order_code"]],
            "option_labels": [labels] * len(frame),
            "options": [texts] * len(frame),
            "seed": frame["seed"],
            "language": "en",
            "system": "",
            "user": "",
            "text_hash": ids,
        }
    )


def _responses(frame: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    ids = np.char.mod("%016x", np.arange(len(frame)))
    return pd.DataFrame(
        {
            "prompt_id": ids,
            "probs": list(probs),
            "option_mass": np.ones(len(frame)),
            "answer": probs.argmax(axis=1),
            "outcome": "answered",
            "generated": "",
        }
    )
