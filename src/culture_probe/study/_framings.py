"""Framings files: how a question is put to the model, and the personas in the file's language.

An English framings file needs no more than its framings: personas and phrase forms come from the
taxonomy (and the study's ``persona`` templates). A framings file in another language names, in that
language, what it puts the model into:

``persona``   axis -> template over a value's local ``name`` ("{{ name }}出身の人")
``names``     value id -> local name
``personas``  proxy id -> a whole noun phrase (placebos, or values a template does not suit)
``forms``     value id -> {form: text}: local phrase forms for crossed personas ("in_phrase": "インドの")
``compose``   {culture: template, placebo: template}: the persona of a crossed study in this language
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from culture_probe.errors import InputError
from culture_probe.identifiers import check_id
from culture_probe.schema import Field, Schema, require_mapping, require_str
from culture_probe.study._model import Framing, Proxy
from culture_probe.templates import Template
from culture_probe.yamlio import Located, LocatedList, load_yaml

FRAMINGS_FILE = Schema(
    "a framings file",
    {
        "framings": Field("list", required=True),
        "baseline": Field("mapping"),
        "description": Field(),
        "language": Field(),
        "persona": Field("mapping", default={}),
        "names": Field("mapping", default={}),
        "personas": Field("mapping", default={}),
        "forms": Field("mapping", default={}),
        "compose": Field("mapping", default={}),
    },
)
FRAMING = Schema(
    "a framing",
    {
        "id": Field(required=True),
        "user": Field(required=True),
        "system": Field(),
        "notes": Field("any"),
    },
)
BASELINE = Schema(
    "a framing", {"user": Field(required=True), "system": Field(), "notes": Field("any")}
)
COMPOSE = Schema("compose", {"culture": Field(), "placebo": Field()})
LOCALISING_KEYS = ("persona", "names", "personas", "forms", "compose")


def load_framings(path: Path) -> tuple[tuple[Framing, ...], Framing | None]:
    """Load the framings file: persona framings and the optional no-proxy ``baseline``."""
    framings, baseline, _, _ = load_language_framings(path, ())
    return framings, baseline


def load_language_framings(
    path: Path, proxies: tuple[Proxy, ...]
) -> tuple[
    tuple[Framing, ...], Framing | None, dict[str, str], dict[str, dict[str, dict[str, Any]]]
]:
    """A framings file's framings, baseline, and localised personas and forms for ``proxies``."""
    raw = require_mapping(load_yaml(path), "a framings file", path=str(path))
    spec = FRAMINGS_FILE.read(raw)
    entries: LocatedList = spec["framings"]
    framings = tuple(
        _load_framing(
            require_mapping(entry, "a framing", path=str(path), line=entries.line_of(index))
        )
        for index, entry in enumerate(entries)
    )
    baseline = _load_baseline(spec["baseline"]) if spec["baseline"] is not None else None
    if not any(key in raw for key in LOCALISING_KEYS):
        return framings, baseline, {}, {}
    personas, forms = _localised(raw, spec, proxies)
    return framings, baseline, personas, forms


def _load_framing(entry: Located) -> Framing:
    spec = FRAMING.read(entry)
    check_id(
        str(spec["id"]), what="framing id", path=entry.path, line=entry.line_of("id"), reserved=True
    )
    return Framing(
        id=spec["id"],
        user=_inline_template(entry, "user"),
        system=_inline_template(entry, "system") if spec["system"] is not None else None,
    )


def _load_baseline(entry: Located) -> Framing:
    spec = BASELINE.read(entry)
    return Framing(
        id="none",
        user=_inline_template(entry, "user"),
        system=_inline_template(entry, "system") if spec["system"] is not None else None,
    )


def _inline_template(entry: Located, key: str) -> Template:
    source = require_str(entry, key)
    # A block scalar starts on the line after its key.
    first_line = entry.line_of(key) + (1 if "\n" in source else 0)
    return Template.compile(source, path=entry.path, first_line=first_line, key=key)


def _localised(
    raw: Located, spec: dict[str, Any], proxies: tuple[Proxy, ...]
) -> tuple[dict[str, str], dict[str, dict[str, dict[str, Any]]]]:
    """Personas and forms in the file's language, for every proxy but the baseline."""
    names = _strings(spec["names"])
    phrases = _strings(spec["personas"])
    local_forms = {
        str(value_id): _strings(
            require_mapping(block, "forms", path=raw.path, line=raw.line_of("forms"))
        )
        for value_id, block in spec["forms"].items()
    }
    compose = COMPOSE.read(spec["compose"]) if spec["compose"] else {}
    person_templates = {
        str(axis): Template.compile(
            require_str(spec["persona"], axis), path=raw.path, first_line=raw.line_of("persona")
        )
        for axis in spec["persona"]
    }
    personas: dict[str, str] = {}
    forms: dict[str, dict[str, dict[str, Any]]] = {}
    for proxy in proxies:
        if proxy.kind == "baseline":
            continue
        proxy_forms = _proxy_forms(proxy, names, local_forms, person_templates, phrases)
        forms[proxy.id] = proxy_forms
        localised = {
            slot
            for slot, base in proxy.forms.items()
            if str(base["id"]) in names and slot in person_templates
        }
        personas[proxy.id] = _persona(raw, proxy, proxy_forms, localised, phrases, compose)
    return personas, forms


def _proxy_forms(
    proxy: Proxy,
    names: dict[str, str],
    local_forms: dict[str, dict[str, str]],
    person_templates: dict[str, Template],
    phrases: dict[str, str],
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for slot, base in proxy.forms.items():
        value_id = str(base["id"])
        forms = dict(base)
        if value_id in names:
            forms["name"] = names[value_id]
            if slot in person_templates:
                forms["person"] = person_templates[slot].render(name=names[value_id], id=value_id)
        if value_id in phrases:
            forms["person"] = phrases[value_id]
        forms.update(local_forms.get(value_id, {}))
        out[slot] = forms
    return out


def _persona(
    raw: Located,
    proxy: Proxy,
    forms: dict[str, dict[str, Any]],
    localised: set[str],
    phrases: dict[str, str],
    compose: dict[str, Any],
) -> str:
    if proxy.id in phrases:
        return phrases[proxy.id]
    template = compose.get(proxy.kind)
    if template is not None:
        compiled = Template.compile(
            template,
            path=raw.path,
            first_line=raw["compose"].line_of(proxy.kind),
            key=f"compose.{proxy.kind}",
        )
        return compiled.render(**forms)
    if len(forms) == 1 and localised:
        return str(forms[next(iter(localised))]["person"])
    where = (
        "'compose' (one template for crossed personas)"
        if len(proxy.components) > 1
        else (f"'names' (with a 'persona' template for axis '{proxy.axis}') or 'personas'")
    )
    raise InputError(
        f"no persona for {proxy.axis} value '{proxy.id}' in this language: add it to {where}",
        path=raw.path,
        line=raw.line,
        key="compose" if len(proxy.components) > 1 else "names",
    )


def _strings(block: Located) -> dict[str, str]:
    return {str(name): require_str(block, name) for name in block}
