"""Ids and texts compared as a reader sees them, not as their bytes differ.

Two rules keep one thing from passing as two:

- **Ids** (study, item, category, value, framing) are written in :data:`ID_CHARACTERS`: ASCII letters
  and digits, then also ``_``, ``-`` and ``.``, at most :data:`MAX_ID_LENGTH` characters. An id
  names a folder (``reports/<study>/``), a column value and a crossed proxy (``IN+islam``), so a
  ``/``, a ``+``, a space or an invisible character in one would let it leave its folder, split
  into two proxies, or look like another id. :data:`RESERVED_IDS` are taken by the tool itself
  (``none`` is the no-proxy baseline).
- **Texts** that must differ (the options of an item, its paraphrases, ids) are compared by
  :func:`comparison_key`: Unicode NFKC (full-width ``Ｒｉｃｅ`` is ``Rice``, NFD ``é`` is NFC ``é``),
  invisible characters removed (zero-width spaces and joiners, soft hyphens, byte-order marks),
  Cyrillic and Greek letters that look like Latin ones read as those (``Rіce`` with a Cyrillic ``і``
  is ``Rice``), case folded and spaces collapsed.

Example:
    >>> comparison_key("Ri\\u200bce") == comparison_key("ＲＩＣＥ") == comparison_key("R\\u0456ce")
    True
    >>> id_problem("../../tmp/x")
    "may hold only ASCII letters, digits, '_', '-' and '.', and must start with a letter or digit"
    >>> id_problem("IN") is None
    True
"""

from __future__ import annotations

import re
import unicodedata

from culture_probe.errors import InputError

#: what an id may hold, in words (docs/studies.md repeats it)
ID_CHARACTERS = "ASCII letters, digits, '_', '-' and '.'"
MAX_ID_LENGTH = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: ids the tool gives a meaning of its own: ``none`` is the no-proxy baseline's proxy
RESERVED_IDS = frozenset({"none"})

#: Cyrillic and Greek letters drawn like a Latin letter, read as that letter for comparisons
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
        # Greek
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ζ": "z",
    }
)  # fmt: skip


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an id, or None when it is a good one."""
    if not ID_PATTERN.fullmatch(value):
        return f"may hold only {ID_CHARACTERS}, and must start with a letter or digit"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long; an id may have at most {MAX_ID_LENGTH}"
    return None


def check_id(
    value: str,
    *,
    what: str,
    path: str | None,
    line: int | None,
    key: str = "id",
    reserved: bool = False,
) -> str:
    """``value`` if it is a good id for ``what``; an :class:`InputError` at its line otherwise.

    Args:
        value: the id as written.
        what: what it names ("item id", "study id", ...), for the message.
        path: the file, line and key it was written at.
        line: its line.
        key: its key.
        reserved: refuse :data:`RESERVED_IDS` as well (ids that become proxies).
    """
    problem = id_problem(value)
    if problem is None and reserved and value.casefold() in RESERVED_IDS:
        problem = "is reserved: 'none' names the no-proxy baseline; choose another id"
    if problem is not None:
        raise InputError(f"{what} {value!r} {problem}", path=path, line=line, key=key)
    return value


def comparison_key(text: str) -> str:
    """``text`` as a reader sees it: NFKC, no invisible characters, look-alikes as Latin letters,
    case folded, single spaces."""
    normal = unicodedata.normalize("NFKC", str(text))
    visible = "".join(char for char in normal if not _invisible(char))
    return " ".join(visible.casefold().translate(_LOOKALIKES).split())


def _invisible(char: str) -> bool:
    """Format characters (zero-width space, joiners, soft hyphen, BOM) and variation selectors."""
    return unicodedata.category(char) == "Cf" or "\ufe00" <= char <= "\ufe0f"


def differences(first: str, second: str) -> str:
    """How two texts with the same :func:`comparison_key` differ, in words, for a message.

    Example:
        >>> differences("Rice", "Ri\\u200bce")
        'the second holds an invisible character (U+200B)'
    """
    for text, which in ((first, "first"), (second, "second")):
        hidden = [char for char in text if _invisible(char)]
        if hidden:
            return f"the {which} holds an invisible character (U+{ord(hidden[0]):04X})"
    for text, which in ((first, "first"), (second, "second")):
        foreign = [
            char for char in text if char.casefold().translate(_LOOKALIKES) != char.casefold()
        ]
        if foreign:
            name = unicodedata.name(foreign[0], "a look-alike letter")
            return f"the {which} holds {name} (U+{ord(foreign[0]):04X}), drawn like a Latin letter"
    if unicodedata.normalize("NFC", first) == unicodedata.normalize("NFC", second):
        return "they differ only in Unicode normal form (NFC and NFD)"
    if unicodedata.normalize("NFKC", first) == unicodedata.normalize("NFKC", second):
        return "they differ only in compatibility forms (full-width or styled letters)"
    return "they differ only in case or spacing"
