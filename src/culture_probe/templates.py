"""Prompt templates: Jinja in a sandbox, with undefined variables as errors.

Templates come from study authors, so they render in :class:`jinja2.sandbox.SandboxedEnvironment`
(no access to Python internals such as ``__class__`` or ``__globals__``, no file or network access) with
:class:`jinja2.StrictUndefined` (a misspelt variable is an error, not an empty string). A template is one
self-contained text: ``{% include %}``, ``{% import %}`` and ``{% extends %}`` would reach other files and
are refused when the template is compiled. A UTF-8 byte-order mark at its start is dropped.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from culture_probe.errors import InputError

_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # prompts are plain text for a model, not HTML
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


BYTE_ORDER_MARK = "\ufeff"
_OTHER_FILES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


def _refuse_other_files(tree: nodes.Template, path: str, first_line: int, key: str | None) -> None:
    """Refuse tags that load another template: the sandbox has no files to give them."""
    for node in tree.find_all(_OTHER_FILES):
        tag = {"FromImport": "import", "Include": "include"}.get(
            type(node).__name__, type(node).__name__.lower()
        )
        raise InputError(
            f"templates cannot use '{{% {tag} %}}': a template is one self-contained text, "
            "with no access to other files (the sandbox forbids it)",
            path=path,
            line=first_line + node.lineno - 1,
            key=key,
        )


@dataclass(frozen=True)
class Template:
    """A compiled template that remembers where its source came from, for error messages.

    Example:
        >>> Template.compile("Hello {{ name }}", path="t.j2").render(name="Ada")
        'Hello Ada'
    """

    source: str
    path: str
    first_line: int
    key: str | None
    compiled: jinja2.Template

    @classmethod
    def compile(
        cls, source: str, *, path: str, first_line: int = 1, key: str | None = None
    ) -> Template:
        source = source.removeprefix(BYTE_ORDER_MARK)
        try:
            _refuse_other_files(_ENVIRONMENT.parse(source), path, first_line, key)
            compiled = _ENVIRONMENT.from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise InputError(
                f"template syntax error: {error.message}",
                path=path,
                line=first_line + (error.lineno or 1) - 1,
                key=key,
            ) from None
        return cls(source=source, path=path, first_line=first_line, key=key, compiled=compiled)

    def render(self, **context: Any) -> str:
        try:
            return self.compiled.render(**context).strip()
        except SecurityError as error:
            raise InputError(
                f"template tried to reach Python internals, which the sandbox forbids ({error})",
                path=self.path,
                line=self._failing_line(),
                key=self.key,
            ) from None
        except jinja2.UndefinedError as error:
            names = ", ".join(sorted(context))
            raise InputError(
                f"template uses an undefined variable: {error.message}",
                path=self.path,
                line=self._failing_line(),
                key=self.key,
                hint=f"variables available here: {names}",
            ) from None
        except jinja2.TemplateError as error:
            raise InputError(
                f"template error: {error}", path=self.path, line=self._failing_line(), key=self.key
            ) from None

    def _failing_line(self) -> int:
        """The source line the exception was raised at, from Jinja's rewritten traceback."""
        template_lines = [
            frame.lineno
            for frame in traceback.extract_tb(sys.exc_info()[2])
            if frame.filename == "<template>" and frame.lineno is not None
        ]
        offset = template_lines[-1] if template_lines else 1
        return self.first_line + offset - 1
