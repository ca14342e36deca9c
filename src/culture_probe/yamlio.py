"""YAML loading that remembers where each key and list entry came from.

Every mapping is loaded as a :class:`Located` dict and every sequence as a :class:`LocatedList`; both
know the file and the line of themselves and of each of their entries, so that validation errors can
point at the exact line a user has to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from culture_probe.errors import InputError


class Located(dict[str, Any]):
    """A mapping from a YAML file, with the line of the mapping and of each key (1-based)."""

    path: str
    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence from a YAML file, with the line of the sequence and of each entry (1-based)."""

    path: str
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _make_loader(path: str) -> type[yaml.SafeLoader]:
    class LocatingLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Located:
        loader.flatten_mapping(node)
        mapping = Located()
        mapping.path = path
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise InputError(
                    "mapping keys must be plain strings",
                    path=path,
                    line=key_node.start_mark.line + 1,
                )
            key = str(key)
            if key in mapping:
                raise InputError(
                    "duplicate key", path=path, line=key_node.start_mark.line + 1, key=key
                )
            mapping[key] = loader.construct_object(value_node, deep=True)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LocatedList:
        sequence = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
        sequence.path = path
        sequence.line = node.start_mark.line + 1
        sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
        return sequence

    LocatingLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
        construct_mapping,
    )
    LocatingLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
        construct_sequence,
    )
    return LocatingLoader


def load_yaml(path: str | Path) -> Any:
    """Load a YAML file; syntax errors become an :class:`InputError` with file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", path=path) from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, path: str) -> Any:
    """Load YAML text as if it came from ``path`` (used for messages only)."""
    try:
        return yaml.load(text, Loader=_make_loader(path))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "malformed YAML"
        raise InputError(f"malformed YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as error:
        raise InputError(f"malformed YAML: {error}", path=path) from None
