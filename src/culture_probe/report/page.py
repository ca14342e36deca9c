"""One self-contained HTML page: inline CSS and JavaScript, no external request of any kind.

The page is rendered by Jinja2 with autoescaping on, so every ``str`` handed to these functions is
shown as text; only :class:`markupsafe.Markup` produced by this package (charts, tables, fragments)
is inserted as markup. A Content-Security-Policy in the page forbids every network fetch and allows
only the page's own scripts (by SHA-256 hash), so even a string that slipped past escaping could
not run or call out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from culture_probe import __version__
from culture_probe.atomic import atomic_write_bytes

_PACKAGE = "culture_probe.report"


@dataclass(frozen=True)
class Section:
    """A titled block of the page.

    Attributes:
        title: The heading (plain text, escaped).
        body: Markup built with this package, or plain text (escaped).
        anchor: The element id, for links (``#anchor``); derived from the title when empty.
        collapsible: Render as a ``<details>`` block the reader can fold.
        open: Whether a collapsible block starts unfolded.
    """

    title: str
    body: Markup | str
    anchor: str = ""
    collapsible: bool = False
    open: bool = True

    @property
    def resolved_anchor(self) -> str:
        return self.anchor or slug(self.title)


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment for the report templates: autoescaping on, strict undefined."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def asset(name: str) -> str:
    """The text of a bundled asset (``report.css``, ``report.js``, ``prompts.js``)."""
    return (resources.files(_PACKAGE) / "assets" / name).read_text(encoding="utf-8")


def render_template(name: str, **context: Any) -> Markup:
    """Render one of the package templates (``templates/<name>``) to markup."""
    return Markup(environment().get_template(name).render(**context))


def slug(text: str) -> str:
    """A lower-case anchor id made of ``[a-z0-9-]`` from any text ("Option position" ->
    "option-position")."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned or "section"


def json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as ``\\u003c``-style escapes, so neither ``</script>`` nor
    ``<!--`` can appear in the blob and end or comment out the element; U+2028/U+2029 are escaped
    for old parsers. ``JSON.parse`` restores every character unchanged.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def content_security_policy(scripts: Sequence[str]) -> str:
    """A CSP that forbids every fetch and allows only the given inline scripts, by hash."""
    hashes = " ".join(
        "'sha256-"
        + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
        + "'"
        for script in scripts
    )
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {hashes or chr(39) + 'none' + chr(39)}; base-uri 'none'; form-action 'none'"
    )


def render_page(
    title: str,
    sections: Sequence[Section],
    *,
    lead: str | None = None,
    footer: str | None = None,
    data: Mapping[str, Any] | None = None,
    scripts: Sequence[str] = (),
    language: str = "en",
) -> str:
    """Render a complete, self-contained HTML page.

    Args:
        title: Page title and top heading.
        sections: The blocks of the page, in order; a table of contents is added for three or more.
        lead: A sentence under the title.
        footer: Text for the footer; defaults to the generator name.
        data: JSON-serialisable blobs embedded as ``<script type="application/json" id=KEY>``.
        scripts: Names of extra bundled scripts to include after ``report.js`` (e.g.
        ``"prompts.js"``).
        language: The page language (``<html lang>``).

    Returns:
        The HTML text.
    """
    script_texts = [asset("report.js"), *(asset(name) for name in scripts)]
    generator = f"culture-probe {__version__}"
    return str(
        render_template(
            "page.html.j2",
            title=title,
            lead=lead,
            language=language,
            generator=generator,
            footer=footer or f"Generated by {generator}. This page makes no network requests.",
            css=Markup(asset("report.css")),
            sections=[
                {
                    "title": section.title,
                    "anchor": section.resolved_anchor,
                    "body": section.body,
                    "collapsible": section.collapsible,
                    "open": section.open,
                }
                for section in sections
            ],
            data_blocks=[
                {"element_id": key, "json": Markup(json_for_script(value))}
                for key, value in (data or {}).items()
            ],
            scripts=[Markup(text) for text in script_texts],
            content_security_policy=content_security_policy(script_texts),
        )
    )


def write_page(path: Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


def figure(svg: Markup, caption: str | None = None, figure_id: str | None = None) -> Markup:
    """Wrap a chart in ``<figure>`` with an escaped caption."""
    return render_template("figure.html.j2", svg=svg, caption=caption, figure_id=figure_id)


def paragraph(text: str | Markup, class_name: str | None = None) -> Markup:
    """A ``<p>``; use ``class_name="verdict"`` for a headline sentence, ``"note"`` for an aside."""
    attribute = Markup(' class="{}"').format(class_name) if class_name else Markup("")
    return Markup("<p{}>{}</p>\n").format(attribute, text)


def note(text: str | Markup) -> Markup:
    """A muted, italic aside (e.g. why a section is missing)."""
    return paragraph(text, "note")


def heading(text: str, level: int = 3) -> Markup:
    """A sub-heading inside a section (``<h3>`` by default)."""
    if level not in range(2, 7):
        raise ValueError(f"heading level must be 2..6, got {level}")
    return Markup("<h{0}>{1}</h{0}>\n").format(level, text)


def bullet_list(entries: Iterable[str | Markup], class_name: str = "") -> Markup:
    """A ``<ul>`` of escaped entries."""
    macro = environment().get_template("fragments.html.j2").module.bullet_list  # type: ignore[attr-defined]
    return Markup(macro(list(entries), class_name))


def key_values(pairs: Iterable[tuple[str, Any]]) -> Markup:
    """A two-column definition list (``<dl>``) of escaped keys and values."""
    macro = environment().get_template("fragments.html.j2").module.key_values  # type: ignore[attr-defined]
    return Markup(macro(list(pairs)))


def join(*parts: Markup | str) -> Markup:
    """Concatenate fragments; plain strings are escaped."""
    return Markup("").join(parts)


def collapsible(summary: str, body: Markup | str, *, open: bool = False) -> Markup:
    """A fold inside a section (``<details>``): the summary line shows, the body on demand."""
    state = Markup(" open") if open else Markup("")
    return Markup('<details class="fold"{}><summary>{}</summary>\n{}</details>\n').format(
        state, summary, body
    )
