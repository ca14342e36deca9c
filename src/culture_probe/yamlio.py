"""YAML loading that remembers where each key and list entry came from, and refuses what a study
file has no use for.

Every mapping is loaded as a :class:`Located` dict and every sequence as a :class:`LocatedList`; both
know the file and the line of themselves and of each of their entries, so that validation errors can
point at the exact line a user has to fix.

The files are read as YAML 1.2 core schema, not PyYAML's YAML 1.1 default: only ``true`` and ``false``
are booleans, so a region ``NO`` (Norway) or a language ``no`` stays a string; ``0755`` is the decimal
755 and ``2024-01-01`` a string. Three limits keep a hostile file from eating the machine: only
regular files of at most :data:`MAX_YAML_BYTES` are read (a FIFO or ``/dev/zero`` is refused at once);
aliases (``*name``) that together expand to more than :data:`MAX_ALIAS_NODES` nodes (a "billion
laughs") are refused at the line of the alias that crosses the limit, whatever key they sit under;
and mappings and lists nested more than :data:`MAX_YAML_DEPTH` deep are refused at the line where
the limit is crossed, before Python's recursion limit is reached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from culture_probe.bounds import MAX_TEXT_FILE_BYTES, read_input_text
from culture_probe.errors import InputError

MAX_YAML_BYTES = MAX_TEXT_FILE_BYTES  # the packaged taxonomy is about 70 kB
MAX_ALIAS_NODES = 10_000  # nodes reachable through aliases, counted with repetition
#: mappings and lists inside each other; a study nests about 6 deep, and parsing and loading
#: recurse once per level, so a few hundred levels would end in a RecursionError
MAX_YAML_DEPTH = 64


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


class CoreResolver(BaseResolver):
    """The YAML 1.2 core schema's implicit types: null, true/false, decimal ints and floats."""


CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
CoreResolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _BoundedComposer(Composer):
    """A composer that stops past :data:`MAX_ALIAS_NODES` aliased nodes or :data:`MAX_YAML_DEPTH`."""

    path: str
    alias_sizes: dict[int, int]
    alias_total: int
    depth: int

    def compose_node(self, parent: Any, index: Any) -> Any:
        events: Any = self  # the parser mixed into the loader gives the event methods
        if not events.check_event(yaml.AliasEvent):
            return self._compose_nested(parent, index)
        line = events.peek_event().start_mark.line + 1
        node = super().compose_node(parent, index)
        if node is not None:
            self._count_alias(node, line)
        return node

    def _compose_nested(self, parent: Any, index: Any) -> Any:
        events: Any = self
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                line = events.peek_event().start_mark.line + 1
                raise InputError(
                    f"mappings and lists are nested more than {MAX_YAML_DEPTH} deep; a study "
                    "file needs fewer than 10 levels",
                    path=self.path,
                    line=line,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _count_alias(self, node: yaml.Node, line: int) -> None:
        self.alias_total += _expanded_size(node, self.alias_sizes, set(), self.path, line)
        if self.alias_total > MAX_ALIAS_NODES:
            raise InputError(
                f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes; write the values out "
                "or use fewer nested aliases",
                path=self.path,
                line=line,
            )


def _expanded_size(
    node: yaml.Node, sizes: dict[int, int], open_: set[int], path: str, line: int
) -> int:
    """Nodes under ``node`` counted as often as aliases repeat them (memoised per node)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise InputError("an alias refers to a node that contains it", path=path, line=line)
    open_.add(id(node))
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, open_, path, line)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes, open_, path, line)
            total += _expanded_size(value, sizes, open_, path, line)
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def _make_loader(path: str) -> type[Any]:
    class LocatingLoader(Reader, Scanner, Parser, _BoundedComposer, SafeConstructor, CoreResolver):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            CoreResolver.__init__(self)
            self.path = path
            self.alias_sizes = {}
            self.alias_total = 0
            self.depth = 0

    def construct_mapping(loader: Any, node: yaml.MappingNode) -> Located:
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

    def construct_sequence(loader: Any, node: yaml.SequenceNode) -> LocatedList:
        sequence = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
        sequence.path = path
        sequence.line = node.start_mark.line + 1
        sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
        return sequence

    def construct_int(loader: Any, node: yaml.ScalarNode) -> int:
        return int(str(loader.construct_scalar(node)), 10)  # "0755" is 755 in YAML 1.2

    for tag, constructor in (
        (BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping),
        (BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence),
        ("tag:yaml.org,2002:int", construct_int),
    ):
        LocatingLoader.add_constructor(tag, constructor)
    return LocatingLoader


def load_yaml(path: str | Path) -> Any:
    """Load a YAML file; syntax errors become an :class:`InputError` with file and line."""
    what = "a study, items, framings or taxonomy file (YAML)"
    return load_yaml_text(read_input_text(path, MAX_YAML_BYTES, what), str(path))


def load_yaml_text(text: str, path: str) -> Any:
    """Load YAML text as if it came from ``path`` (used for messages only).

    Example:
        >>> data = load_yaml_text("region: [NO, DE]\\nlanguage: no\\nflag: true", "s.yaml")
        >>> data["region"], data["language"], data["flag"]
        (['NO', 'DE'], 'no', True)
    """
    loader = _make_loader(path)(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "malformed YAML"
        raise InputError(f"malformed YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as error:
        raise InputError(f"malformed YAML: {error}", path=path) from None
    finally:
        loader.dispose()
