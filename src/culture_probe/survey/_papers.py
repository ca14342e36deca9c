"""Paper lists to pre-fill a workbook with: BibTeX files and CSV tables.

The BibTeX reader covers what reference managers write: ``@type{key, field = {...}, ...}`` entries
with nested braces, quoted values, bare numbers, ``#`` concatenation and ``@string`` macros;
``@comment`` and ``@preamble`` blocks are skipped. Common LaTeX accent commands become Unicode.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from culture_probe.bounds import MAX_DATA_FILE_BYTES, read_input_file
from culture_probe.errors import InputError, did_you_mean
from culture_probe.survey._fields import normalize_label
from culture_probe.survey._records import PaperRecord
from culture_probe.survey._tables import decode_text, read_csv_rows

_SKIPPED_ENTRY_TYPES = {"comment", "preamble"}
_MONTHS = {
    m: m
    for m in (["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "c": "\u0327",
    "v": "\u030c",
    "=": "\u0304",
    ".": "\u0307",
    "u": "\u0306",
}
_STOPWORDS = {
    "a",
    "an",
    "the",
    "of",
    "on",
    "in",
    "for",
    "and",
    "to",
    "with",
    "from",
    "are",
    "is",
    "do",
    "does",
    "can",
    "what",
    "how",
    "towards",
    "toward",
    "we",
}
_PAPER_COLUMNS = ("paper_id", "title", "authors", "year", "venue", "url")
_CSV_ALIASES = {
    "paper": "title",
    "paper_title": "title",
    "paper title": "title",
    "author": "authors",
    "booktitle": "venue",
    "journal": "venue",
    "link": "url",
    "id": "paper_id",
    "key": "paper_id",
    "bibtex_key": "paper_id",
}


#: Years a title may carry at its end (an earlier or later number is something else).
YEARS_IN_TITLES = (1950, 2030)
_TITLE_YEAR = re.compile(
    r"(?:(?P<open>\s*[(\[])|(?P<separator>\s*[,;\u2013\u2014-]\s*)|\s+)"
    r"(?P<year>\d{4})[a-z]?(?(open)[)\]])\.?\s*$"
)
#: a year as author lists write it: "2023", "(2024a)" (the second 2024 paper of one author)
_YEAR = re.compile(r"\b((?:19|20)\d{2})[a-z]?\b")
#: a row standing for rows left out ("[REST TRUNCATED]", "[...]", "..."), not a paper
_PLACEHOLDER_TITLE = re.compile(r"\[[^\]a-z]*\]|\.{3,}|\u2026")


class PaperList(list[PaperRecord]):
    """Papers read from a list, with a note for each merge the user should check: rows whose
    titles are written differently merged as one paper, or one title kept as two papers."""

    notes: list[str]

    def __init__(self, records: Iterable[PaperRecord] = (), notes: Iterable[str] = ()) -> None:
        super().__init__(records)
        self.notes = list(notes)


def is_placeholder_title(title: str) -> bool:
    """Whether a title cell stands for left-out rows rather than naming a paper.

    Example:
        >>> [is_placeholder_title(t) for t in ("[REST TRUNCATED]", "...", "[Re] Culture Probes")]
        [True, True, False]
    """
    return _PLACEHOLDER_TITLE.fullmatch(title.strip()) is not None


def paper_identity(title: str, authors: str, year: int | None) -> tuple[str, str, int | None]:
    """What makes two rows one paper: the title up to case and punctuation, the first author's
    surname and the year. Two papers may share a title ("Cultural Alignment" by two groups)."""
    return normalize_label(title), _first_surname(authors), year


def merge_note(path: str | Path, line: int, first_line: int, title: str, first: str) -> str:
    """The report of a merge whose titles are not written the same, for the user to check."""
    return (
        f"{path}: line {line} merged into line {first_line} as one paper (same authors and "
        f"year; titles differ only in case or punctuation: {title!r} and {first!r})"
    )


def apart_note(path: str | Path, line: int, first_line: int, title: str) -> str:
    """The report of one title kept as two papers because authors or year differ."""
    return (
        f"{path}: line {line} has the title of line {first_line} ({title!r}) but other "
        "authors or another year: kept as a paper of its own"
    )


def note_merge(
    notes: list[str],
    kept: dict[str, int],
    where: tuple[str | Path, int, int],
    titles: tuple[str, str],
    same_paper: bool,
) -> None:
    """Note a merge of differently written titles, or a title seen before kept apart."""
    path, line, first_line = where
    title, first = titles
    if same_paper:
        if title != first:
            notes.append(merge_note(path, line, first_line, title, first))
    elif normalize_label(title) in kept:
        notes.append(apart_note(path, line, kept[normalize_label(title)], title))


class _BibtexScanner:
    """A cursor over BibTeX text that knows the line it is on, for error messages."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.position = 0
        self.strings: dict[str, str] = dict(_MONTHS)

    def line(self, position: int | None = None) -> int:
        return self.text.count("\n", 0, self.position if position is None else position) + 1

    def fail(self, message: str, position: int | None = None) -> InputError:
        return InputError(message, path=self.path, line=self.line(position))

    def skip_space(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def expect(self, characters: str) -> str:
        self.skip_space()
        if self.position >= len(self.text) or self.text[self.position] not in characters:
            found = self.text[self.position] if self.position < len(self.text) else "end of file"
            raise self.fail(f"expected one of {list(characters)}, found '{found}'")
        self.position += 1
        return self.text[self.position - 1]

    def name(self) -> str:
        self.skip_space()
        match = re.compile(r"[^\s,={}()\"#]+").match(self.text, self.position)
        if match is None:
            raise self.fail("expected a name")
        self.position = match.end()
        return match.group(0)

    def braced(self) -> str:
        """The text inside balanced braces; the opening brace has been consumed."""
        start, depth = self.position, 1
        while self.position < len(self.text):
            character = self.text[self.position]
            self.position += 1
            if character == "\\":
                self.position += 1
            elif character == "{":
                depth += 1
            elif character == "}":
                depth -= 1
                if depth == 0:
                    return self.text[start : self.position - 1]
        raise self.fail("unbalanced braces: '{' is never closed", start - 1)

    def quoted(self) -> str:
        start, depth = self.position, 0
        while self.position < len(self.text):
            character = self.text[self.position]
            self.position += 1
            if character == "{":
                depth += 1
            elif character == "}":
                depth -= 1
            elif character == '"' and depth == 0:
                return self.text[start : self.position - 1]
        raise self.fail("unterminated quoted value", start - 1)

    def value(self) -> str:
        """A field value: pieces joined by ``#``."""
        pieces = [self.piece()]
        while True:
            self.skip_space()
            if self.position < len(self.text) and self.text[self.position] == "#":
                self.position += 1
                pieces.append(self.piece())
            else:
                return "".join(pieces)

    def piece(self) -> str:
        self.skip_space()
        if self.text.startswith("{", self.position):
            self.position += 1
            return self.braced()
        if self.text.startswith('"', self.position):
            self.position += 1
            return self.quoted()
        start = self.position
        word = self.name()
        if word.isdigit():
            return word
        if word.lower() not in self.strings:
            raise self.fail(f"undefined @string macro '{word}'", start)
        return self.strings[word.lower()]


def parse_bibtex(text: str, path: str = "<bibtex>") -> list[dict[str, str]]:
    """Entries of a BibTeX text as dicts with ``ENTRYTYPE``, ``ID`` and lower-case field names.

    Example:
        >>> parse_bibtex("@article{k1, title={A {B} c}, year=2023}")
        [{'ENTRYTYPE': 'article', 'ID': 'k1', 'title': 'A {B} c', 'year': '2023'}]
    """
    scanner = _BibtexScanner(text, path)
    entries: list[dict[str, str]] = []
    while (at := text.find("@", scanner.position)) >= 0:
        scanner.position = at + 1
        entry_type = scanner.name().lower()
        if entry_type in _SKIPPED_ENTRY_TYPES:
            _skip_block(scanner)
            continue
        closing = "}" if scanner.expect("{(") == "{" else ")"
        if entry_type == "string":
            key = scanner.name().lower()
            scanner.expect("=")
            scanner.strings[key] = scanner.value()
            scanner.expect(closing)
            continue
        entries.append(_entry_body(scanner, entry_type, closing))
    return entries


def _skip_block(scanner: _BibtexScanner) -> None:
    scanner.skip_space()
    if scanner.text.startswith("{", scanner.position):
        scanner.position += 1
        scanner.braced()


def _entry_body(scanner: _BibtexScanner, entry_type: str, closing: str) -> dict[str, str]:
    start = scanner.position
    entry = {"ENTRYTYPE": entry_type, "ID": scanner.name()}
    while scanner.expect("," + closing) == ",":
        scanner.skip_space()
        if scanner.text.startswith(closing, scanner.position):  # trailing comma
            scanner.position += 1
            break
        field = scanner.name().lower()
        scanner.expect("=")
        if field in entry:
            raise scanner.fail(
                f"entry '{entry['ID']}' (line {scanner.line(start)}) has field '{field}' twice"
            )
        entry[field] = scanner.value()
    return entry


def latex_to_text(value: str) -> str:
    """Plain text of a BibTeX value: accents to Unicode, braces and extra spaces removed."""

    def accent(match: re.Match[str]) -> str:
        return unicodedata.normalize("NFC", match.group(2) + _ACCENTS[match.group(1)])

    text = re.sub(r"\\([`'^\"~=.])\{?\s*([A-Za-z])\}?", accent, value)
    text = re.sub(r"\\([cvu])\{\s*([A-Za-z])\}", accent, text)
    text = re.sub(r"\\([cvu])\s+([A-Za-z])", accent, text)
    text = text.replace("\\&", "&").replace("--", "\u2013").replace("~", " ")
    text = re.sub(r"\\[a-zA-Z]+\s*", "", text)
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def read_bibtex(path: str | Path) -> list[PaperRecord]:
    """Papers of a BibTeX file, keyed by their citation keys."""
    text = decode_text(read_input_file(path, MAX_DATA_FILE_BYTES, "a BibTeX file"), path)
    records: list[PaperRecord] = []
    for entry in parse_bibtex(text, str(path)):
        fields = {key: latex_to_text(value) for key, value in entry.items()}
        year = re.search(r"\d{4}", fields.get("year", ""))
        venue = fields.get("booktitle") or fields.get("journal") or fields.get("publisher", "")
        url = fields.get("url") or (f"https://doi.org/{fields['doi']}" if "doi" in fields else "")
        records.append(
            PaperRecord(
                paper_id=entry["ID"],
                title=fields.get("title", ""),
                authors=fields.get("author", ""),
                year=int(year.group(0)) if year else None,
                venue=venue,
                url=url,
            )
        )
    return records


def paper_list_header(
    names: list[str], path: str | Path, required: tuple[str, ...] = ("title",)
) -> list[str]:
    """Column names of a paper list in the papers sheet's terms: ``Paper`` and ``paper_title``
    read as ``title``, ``author`` as ``authors``, and so on (an alias only where the column it
    stands for is not there itself).

    Raises:
        InputError: naming each required column that is missing, its accepted aliases and the
            columns the file has.

    Example:
        >>> paper_list_header(["Paper", "Authors", "Year"], "papers.csv")
        ['title', 'authors', 'year']
    """
    lowered = [name.strip().lower() for name in names]
    header = [
        _CSV_ALIASES[name] if _CSV_ALIASES.get(name, name) not in lowered else name
        for name in lowered
    ]
    for column in required:
        if column not in header:
            aliases = [alias for alias, target in _CSV_ALIASES.items() if target == column]
            accepted = ", ".join(repr(name) for name in (column, *aliases))
            found = ", ".join(repr(name.strip()) for name in names if name.strip()) or "none"
            suggestion = did_you_mean(column, [n for n in lowered if n])
            raise InputError(
                f"no '{column}' column in the header (found columns: {found})",
                path=path,
                line=1,
                hint=(f"{suggestion} " if suggestion else "") + f"expected a column named "
                f"{accepted}",
            )
    return header


def split_title_year(title: str) -> tuple[str, int | None]:
    """The year a title carries at its end, and the title without it where it was appended.

    Only a year from 1950 to 2030 counts, and only in brackets or as the last word, so that
    "Beyond 2000 Tokens" keeps its number. A year in brackets or after a comma or dash is taken
    off the title; a bare last word stays (it may be part of the name, as in "SemEval 2023").

    Example:
        >>> split_title_year("Cultural Bias in LLMs (2023)")
        ('Cultural Bias in LLMs', 2023)
        >>> split_title_year("Findings of SemEval 2023")
        ('Findings of SemEval 2023', 2023)
        >>> split_title_year("Beyond 2000 Tokens"), split_title_year("Model 1234 (1234)")
        (('Beyond 2000 Tokens', None), ('Model 1234 (1234)', None))
    """
    match = _TITLE_YEAR.search(title)
    if match is None or not YEARS_IN_TITLES[0] <= int(match.group("year")) <= YEARS_IN_TITLES[1]:
        return title, None
    year = int(match.group("year"))
    if match.group("open") or match.group("separator"):
        return title[: match.start()].rstrip(), year
    return title, year


def read_paper_csv(path: str | Path) -> PaperList:
    """Papers of a CSV table with a ``title`` column; other columns as in the papers sheet.

    Rows with the same title (up to case and punctuation), first author and year are one paper (a
    long-format list has one row per category) and are read once; where their titles are not
    written the same, the merge is noted in ``merged``. Rows with one title but other authors or
    another year stay separate papers. A placeholder row ("[REST TRUNCATED]") is not a paper.
    With no year column, a year written at the end of the title, "Title (2023)", is read.
    """
    rows = read_csv_rows(path)
    if not rows:
        raise InputError("the paper list is empty", path=path)
    header = paper_list_header(rows[0], path)
    records: list[PaperRecord] = []
    seen: dict[tuple[str, str, int | None], tuple[int, str]] = {}
    first_of_title: dict[str, int] = {}
    notes: list[str] = []
    for line, cells in enumerate(rows[1:], start=2):
        row = dict(zip(header, cells, strict=False))
        if not any(cells) or is_placeholder_title(row.get("title", "")):
            continue
        if not row.get("title"):
            raise InputError("empty title", path=path, line=line, key="title")
        title, year = title_and_year(row)
        authors = row.get("authors", "") or row.get("authors_year", "")
        identity = paper_identity(title, authors, year)
        first_line, first_title = seen.get(identity, (line, title))
        note_merge(notes, first_of_title, (path, line, first_line), (title, first_title),
                   identity in seen)  # fmt: skip
        if identity in seen:
            continue
        seen[identity] = (line, title)
        first_of_title.setdefault(normalize_label(title), line)
        records.append(
            PaperRecord(
                paper_id=row.get("paper_id", ""),
                title=title,
                authors=authors,
                year=year,
                venue=row.get("venue", ""),
                url=row.get("url", ""),
            )
        )
    return PaperList(assign_paper_ids(records), notes)


def title_and_year(row: dict[str, str]) -> tuple[str, int | None]:
    """A paper list row's title and year: from the year column, else from "Smith (2023)" in the
    authors, else from the end of the title."""
    carriers = row.get("year") or row.get("authors_year") or row.get("authors", "")
    year = _YEAR.search(carriers)
    if year is not None:
        return row["title"], int(year.group(1))
    if row.get("year"):
        return row["title"], None  # a year cell that holds no year is not replaced by a guess
    return split_title_year(row["title"])


def read_papers(path: str | Path) -> list[PaperRecord]:
    """Papers of a ``.bib`` or ``.csv`` file."""
    suffix = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise InputError("file not found", path=path)
    if suffix == ".bib":
        return read_bibtex(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_paper_csv(path)
    raise InputError(
        f"cannot read papers from a '{suffix}' file", path=path, hint="expected a .bib or .csv file"
    )


def paper_id_for(authors: str, year: int | None, title: str) -> str:
    """A citation-key-like id: first author's surname, year, first content word of the title.

    Example:
        >>> paper_id_for("Hershcovich, et al. (2022)", 2022, "Challenges and Strategies")
        'hershcovich2022challenges'
    """
    surname = _first_surname(authors)
    words = [w for w in re.findall(r"[a-z0-9]+", _ascii(title).lower()) if w not in _STOPWORDS]
    return f"{surname}{year or ''}{words[0] if words else ''}" or "paper"


def _first_surname(authors: str) -> str:
    """``Hershcovich, Daniel and ...``, ``Daniel Hershcovich`` and ``Hershcovich, et al. (2022)``
    all give ``hershcovich``."""
    first = re.split(r"\s+and\s+", re.sub(r"\(.*?\)", "", authors), maxsplit=1)[0].strip()
    name = first.split(",")[0] if "," in first else (first.split() or [""])[-1]
    return re.sub(r"[^a-z0-9]", "", _ascii(name).lower())


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def assign_paper_ids(records: Iterable[PaperRecord]) -> list[PaperRecord]:
    """Give every record without an id one; suffix b, c, ... where two ids collide."""
    result: list[PaperRecord] = []
    used: set[str] = set()
    for record in records:
        base = record.paper_id or paper_id_for(record.authors, record.year, record.title)
        candidate, suffix = base, ord("b")
        while candidate in used:
            candidate, suffix = f"{base}{chr(suffix)}", suffix + 1
        used.add(candidate)
        result.append(
            PaperRecord(
                candidate,
                record.title,
                record.authors,
                record.year,
                record.venue,
                record.url,
                dict(record.values),
                record.row,
            )
        )
    return result
