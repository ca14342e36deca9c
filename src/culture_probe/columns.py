"""The columns of the tables that flow between stages, in one place.

``plan.parquet`` (one row per prompt, written by :mod:`culture_probe.design`):

============================  ==================================================================
prompt_id                     stable content hash (16 hex) of the design cell and its messages
row                           position in the plan (int), the order results are reported in
study                         study id
item_id, wvs_id, topic        the probe item
scale                         "ordinal" or "nominal"
n_options                     number of answer options K
axis                          demographic axis the proxy belongs to ("region", ...; "none", "placebo");
                              for crossed axes their ids joined by " x " ("region x religion")
proxy                         proxy value id ("JP", ...; "none" for the baseline); for crossed axes the
                              values' ids joined by "+" ("IN+islam")
axis_<axis>                   one column per axis of the study ("axis_region", ...): the row's value
                              id on that axis; "" for placebos, the baseline and axes not crossed
proxy_name                    readable name of the proxy value
proxy_kind                    "culture", "placebo" or "baseline"
paraphrase                    paraphrase id within the item ("p1", ...)
framing                       framing id ("imagine", ...; "none" for the baseline)
wording                       paraphrase and framing together, "p1/imagine": the wording facet
order                         option order id ("canonical", "reversed", "cyclic1", "perm0213", ...)
enumerator                    option enumerator ("A.", "(a)", "1.", "i.", "none"; default "A.")
separator                     text between two options (default a newline)
instruction                   answer instruction id ("default" = the template's own, "i2", ...)
shots                         number of demonstrations before the question, as a string ("0", ...)
display_to_canonical          list[int]: canonical option index shown at each display position
option_labels                 list[str]: the labels answered with, in display order ("A", "a", "1",
                              "ii", an option's first word for enumerator "none", ...)
options                       list[str]: canonical option texts
seed                          sampling seed (int; 0 for log-probability scoring)
language                      language of the prompt (ISO 639-1)
system                        system message ("" when none)
user                          user message
text_hash                     hash of the messages alone (identical prompts share it)
============================  ==================================================================

``responses.parquet`` (one row per scored prompt, written by :mod:`culture_probe.store`):

============================  ==================================================================
prompt_id                     joins to the plan
probs                         list[float]: probability of each option, CANONICAL order, sums to 1
option_mass                   probability the option labels got before renormalising
answer                        canonical index of the chosen (most probable) option; -1 if none
outcome                       "answered", "refused" or "invalid" (the latter two in generate mode)
generated                     generated text (generate mode; "" otherwise)
============================  ==================================================================

The analysis works on the *tidy responses table*: the plan joined with the responses, plus ``score``,
the expected ordinal position sum_k probs[k] * k / (K - 1) in [0, 1] (0 = the first canonical option).

Human reference distributions (``reference.parquet`` beside a study or produced by an importer):
``item_id, proxy, option (canonical index), share`` with shares summing to 1 per (item_id, proxy).
"""

PLAN_COLUMNS = (
    "prompt_id",
    "row",
    "study",
    "item_id",
    "wvs_id",
    "topic",
    "scale",
    "n_options",
    "axis",
    "proxy",
    "proxy_name",
    "proxy_kind",
    "paraphrase",
    "framing",
    "wording",
    "order",
    "display_to_canonical",
    "option_labels",
    "options",
    "seed",
    "language",
    "system",
    "user",
    "text_hash",
)
#: ``failure`` is "server" for a result the server spoiled (asked again on resume), else ""
RESPONSE_COLUMNS = (
    "prompt_id",
    "probs",
    "option_mass",
    "answer",
    "outcome",
    "generated",
    "failure",
)
REFERENCE_COLUMNS = ("item_id", "proxy", "option", "share")
