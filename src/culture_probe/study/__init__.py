"""Studies: which probe items to ask, crossed with which proxies, in which wordings, orders and languages.

A study file is a few readable lines of YAML (see ``taxonomy/values.yaml``)::

    study: values
    title: Emotions and Values
    semantic_proxy: emotions_and_values
    items: ../probes/values/items.yaml
    template: ../probes/templates/multiple_choice.{lang}.j2
    framings: ../probes/framings/persona.{lang}.yaml
    use_framings: [imagine]        # optional; default: every framing in the file
    languages: [en, ja]            # optional; default [en] (or the single ``language:``)
    reference: reference.parquet   # optional human answer distributions
    answers: answers.parquet       # optional annotated short answers (short-answer items)
    axes:
      region: [US, DE, JP, ...]
    controls:
      baseline: true
      placebos: [colour_green, ...]
    option_orders: [canonical, reversed]

Paths are relative to the study file. Everything is validated on load, so that a bad file stops the run
before anything is written. ``docs/studies.md`` lists every key, how axes are crossed (``cross``,
``exclude``, ``persona``), the format factors (``formats``) and the ``budget``.

The package: :mod:`._model` (the data), :mod:`._loader` (the study file and its declarative schema),
:mod:`._items`, :mod:`._framings`, :mod:`._proxies`, :mod:`._formats` (the files and blocks it points
to) and :mod:`._reference` (human reference tables).

**Prompt language** is an axis of its own, separate from the culture asked about: ``languages: [en, ja]``
crosses every item, proxy and wording with each language, so that "asked in English about Japan" and
"asked in Japanese about Japan" sit side by side in the plan's ``language`` column. A ``{lang}`` in the
``template`` and ``framings`` paths is replaced by each language code (``multiple_choice.ja.j2``).
The language codes are ISO 639-1 values of the taxonomy's Language category.

*Translated items.* An items file is written in one language (``language: en`` at its top, the default)
and each item carries its other languages in a ``translations`` block, with the same number of
paraphrases and options in the same canonical order::

    - id: family_importance
      options: [Very important, Rather important, Not very important, Not at all important]
      paraphrases: [How much does family matter in your life?, ...]
      translations:
        ja:
          options: [とても重要, やや重要, あまり重要でない, まったく重要でない]
          paraphrases: [あなたの人生にとって、家族はどのくらい大切ですか。, ...]

Paraphrase ``p2`` in Japanese translates ``p2`` in English, so a wording keeps its id across languages.

*Localised personas.* A framings file in another language names, in that language, the personas it
puts the model into: ``persona`` maps an axis to a template over the value's local name, ``names`` gives
the local names, and ``personas`` gives whole noun phrases for values a template does not suit::

    language: ja
    persona: {region: "{{ name }}出身の人"}
    names: {JP: 日本, US: アメリカ}
    personas: {colour_green: 好きな色が緑の人}

An English framings file needs none of this: personas come from the taxonomy.

**Short-answer items** (``kind: short_answer``) have no options: the model writes an answer (generate
mode) that is scored by matching it against annotated human answers (BLEnD, Myung et al. 2024). Their
question usually names the culture, so the text is given per proxy and language::

    - id: Al-en-01
      kind: short_answer
      questions_by_proxy:
        DZ: {en: What is a common snack for preschool kids in Algeria?, ar: ...}

Only the (proxy, language) pairs that have a text are planned.
"""

from culture_probe.study._formats import ENUMERATOR_PATTERN, NO_ENUMERATOR
from culture_probe.study._framings import load_framings, load_language_framings
from culture_probe.study._items import load_items
from culture_probe.study._loader import STUDY, load_study
from culture_probe.study._model import (
    AXIS_JOIN,
    CROSS_JOIN,
    ITEM_KINDS,
    LABEL_STYLES,
    LANGUAGE_CATEGORY,
    LANGUAGE_PLACEHOLDER,
    MAX_PERMUTED_OPTIONS,
    ORDERS,
    ORDINAL_ORDERS,
    PLACEBO_CATEGORY,
    SCALES,
    SHORT_ANSWER_SCALE,
    Budget,
    Formats,
    Framing,
    Instruction,
    ItemText,
    LanguageSetup,
    Paraphrase,
    ProbeItem,
    Proxy,
    Study,
)
from culture_probe.study._reference import REFERENCE_TOLERANCE, read_reference

__all__ = [
    "AXIS_JOIN",
    "CROSS_JOIN",
    "ENUMERATOR_PATTERN",
    "ITEM_KINDS",
    "LABEL_STYLES",
    "LANGUAGE_CATEGORY",
    "LANGUAGE_PLACEHOLDER",
    "MAX_PERMUTED_OPTIONS",
    "NO_ENUMERATOR",
    "ORDERS",
    "ORDINAL_ORDERS",
    "PLACEBO_CATEGORY",
    "REFERENCE_TOLERANCE",
    "SCALES",
    "SHORT_ANSWER_SCALE",
    "STUDY",
    "Budget",
    "Formats",
    "Framing",
    "Instruction",
    "ItemText",
    "LanguageSetup",
    "Paraphrase",
    "ProbeItem",
    "Proxy",
    "Study",
    "load_framings",
    "load_items",
    "load_language_framings",
    "load_study",
    "read_reference",
]
