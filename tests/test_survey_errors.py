"""Bad review sheets and lists: every problem is named by sheet, row, column and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from culture_probe.errors import InputError
from culture_probe.survey import (
    PaperRecord,
    build_fields,
    import_long_list,
    read_review,
    write_workbook,
)
from culture_probe.survey.cli import app
from culture_probe.taxonomy import load_taxonomy

TAXONOMY = Path(__file__).parents[1] / "taxonomy" / "taxonomy.yaml"


@pytest.fixture(scope="module")
def fields() -> tuple:
    return build_fields(load_taxonomy(TAXONOMY))


@pytest.fixture()
def workbook(tmp_path: Path, fields: tuple) -> Path:
    records = [
        PaperRecord("naous2024beer", "Having Beer after Prayer?", "Naous, Tarek", 2024),
        PaperRecord("durmus2023global", "Towards Measuring ... Global Opinions", "Durmus", 2023),
        PaperRecord("cao2023assessing", "Assessing Cross-Cultural Alignment", "Cao", 2023),
    ]
    return write_workbook(tmp_path / "review.xlsx", records, fields)


def _edit(path: Path, edits: dict[str, object], rename: str | None = None) -> Path:
    """Change cells (``"access@3"``: header name and row) of the papers sheet, as a user would."""
    book = load_workbook(path)
    sheet = book["papers"]
    header = [cell.value for cell in sheet[1]]
    for target, value in edits.items():
        name, _, row = target.partition("@")
        if name not in header:
            header.append(name)
            sheet.cell(row=1, column=len(header), value=name)
        sheet.cell(row=int(row or 1), column=header.index(name) + 1).value = value
    if rename:
        sheet.title = rename
    book.save(path)
    return path


def _single_error(path: Path, fields: tuple) -> str:
    sheet = read_review(str(path), fields)
    assert len(sheet.errors) == 1, [str(issue) for issue in sheet.issues]
    return str(sheet.errors[0])


def test_misspelt_choice_names_cell_and_suggests_the_choice(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"access@3": "blak-box"}), fields)
    header = [c.value for c in load_workbook(workbook)["papers"][1]]
    letter = (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[header.index("access")]
        if header.index("access") < 26
        else None
    )
    assert "sheet 'papers', row 3, column " in message and "(access)" in message
    if letter:
        assert f"column {letter} (access)" in message
    assert "did you mean 'black-box'?" in message
    assert "allowed: black-box, white-box, both" in message


def test_misspelt_label_in_a_semicolon_column_suggests_the_label(
    workbook: Path, fields: tuple
) -> None:
    message = _single_error(_edit(workbook, {"demographic@2": "Region; Regoin"}), fields)
    assert "row 2" in message and "(demographic)" in message
    assert "'Regoin' is not a label of 'demographic'" in message
    assert "did you mean 'region'?" in message


def test_label_from_another_field_names_the_right_field(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"semantic@4": "Region"}), fields)
    assert "row 4" in message and "(semantic)" in message
    assert "'Region' is a label of 'demographic'" in message
    assert "did you mean to put it in 'demographic'?" in message


def test_checkbox_column_of_another_field_suggests_the_right_column(
    workbook: Path, fields: tuple
) -> None:
    message = _single_error(_edit(workbook, {"semantic:region": "semantic:region"}), fields)
    assert "row 1" in message and "(semantic:region)" in message
    assert "did you mean 'demographic:region'?" in message


def test_checkbox_cell_other_than_x_is_rejected(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"demographic:region@2": "yes"}), fields)
    assert "(demographic:region)" in message and "'yes' is not a check mark" in message


def test_empty_required_cell_is_reported(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"title@3": None}), fields)
    assert "sheet 'papers', row 3, column B (title)" in message
    assert "required cell 'title' is empty" in message


def test_duplicated_paper_id_names_both_rows(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"paper_id@4": "naous2024beer"}), fields)
    assert "sheet 'papers', row 4, column A (paper_id)" in message
    assert "duplicate paper_id 'naous2024beer' (first in row 2)" in message


def test_year_that_is_not_a_year(workbook: Path, fields: tuple) -> None:
    message = _single_error(_edit(workbook, {"year@2": "20233"}), fields)
    assert "row 2, column D (year)" in message and "from 1900 to 2100" in message


def test_renamed_sheet_says_which_sheets_exist_and_what_to_do(
    workbook: Path, fields: tuple
) -> None:
    _edit(workbook, {}, rename="Papers (AB)")
    with pytest.raises(InputError) as raised:
        read_review(str(workbook), fields)
    message = str(raised.value)
    assert str(workbook) in message
    assert "no sheet named 'papers'" in message and "'Papers (AB)'" in message
    assert "rename it back to 'papers'" in message


def _csv_text() -> str:
    return (
        "paper_id;title;year;access;demographic\n"
        "koksal2023;Kültürel NLP in Türkiye — “quoted”;2023;black-box;Region; Religion\n"
        "naous2024;Beer after Prayer;2024;blak-box;\n"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_csv_export_in_another_delimiter_and_encoding_is_read(
    tmp_path: Path, fields: tuple, encoding: str
) -> None:
    path = tmp_path / f"export-{encoding}.csv"
    # cp1252 has the curly quotes and the dash; utf-16 writes a byte-order mark.
    path.write_bytes(
        _csv_text().replace(";Region; Religion", ';"Region; Religion"').encode(encoding)
    )
    sheet = read_review(str(path), fields)
    first = sheet.records[0]
    assert first.title == "Kültürel NLP in Türkiye — “quoted”"
    assert first.labels("demographic") == ("region", "religion")
    (error,) = sheet.errors
    assert str(error).startswith(f"{path}: row 3, column D (access): 'blak-box'")
    assert "did you mean 'black-box'?" in str(error)


def test_tab_separated_latin1_export_is_read(tmp_path: Path, fields: tuple) -> None:
    path = tmp_path / "export.tsv"
    path.write_bytes("paper_id\ttitle\tyear\nx1\tCaf\xe9 culture\t2022\n".encode("latin-1"))
    (record,) = read_review(str(path), fields).records
    assert record.title == "Café culture" and record.year == 2022


def test_importer_names_row_and_value_of_unknown_and_misfiled_categories(
    tmp_path: Path, fields: tuple
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "taxonomy,dimension,category,authors_year,title,venue,url\n"
        'd,Demographic Proxies,Region,"A, et al. (2023)",Paper A,ACL,u\n'
        'd,Demographic Proxies,Regoin,"A, et al. (2023)",Paper A,ACL,u\n'
        'd,Semantic Proxies,Religion,"B, et al. (2022)",Paper B,ACL,u\n'
        'd,Demografic Proxies,Region,"B, et al. (2022)",Paper B,ACL,u\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as raised:
        import_long_list(path, fields)
    message = str(raised.value)
    assert "3 row(s) could not be imported" in message
    assert (
        f"{path}: row 3, column C (category): unknown category 'Regoin'; "
        "did you mean 'Region'?" in message
    )
    assert "row 4, column C (category): 'Religion' is a label of 'demographic'" in message
    assert (
        "row 5, column B (dimension): unknown dimension 'Demografic Proxies'; "
        "did you mean 'Demographic proxies'?" in message
    )


def test_importer_matches_labels_ignoring_case_and_punctuation(
    tmp_path: Path, fields: tuple
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "category,title\nEMOTIONS & VALUES,P\nfood-and-drink,P\nCountry,P\n", encoding="utf-8"
    )
    (record,) = import_long_list(path, fields)
    assert record.labels("semantic") == ("emotions_and_values", "food_and_drink")
    assert record.labels("demographic") == ("region",)  # "Country" is an alias of Region


def test_validate_command_exits_non_zero_and_lists_every_problem(
    workbook: Path, tmp_path: Path
) -> None:
    _edit(workbook, {"access@2": "whitebx", "paper_id@3": "naous2024beer"})
    good = write_workbook(
        tmp_path / "good.xlsx", [PaperRecord("a", "A")], build_fields(load_taxonomy(TAXONOMY))
    )
    result = CliRunner().invoke(
        app, ["validate", str(good), str(workbook), "--taxonomy", str(TAXONOMY)]
    )
    assert result.exit_code == 2
    output = result.output
    assert f"{good}: 1 papers, ok" in output and f"{workbook}: 3 papers, 2 error(s)" in output
    assert "row 2" in output and "did you mean 'white-box'?" in output
    assert "duplicate paper_id 'naous2024beer'" in output


def test_merge_refuses_a_sheet_with_errors_and_writes_nothing(
    workbook: Path, tmp_path: Path
) -> None:
    _edit(workbook, {"turns@2": "mutli-turn"})
    out = tmp_path / "tidy.parquet"
    result = CliRunner().invoke(
        app, ["merge", str(workbook), "-o", str(out), "--taxonomy", str(TAXONOMY)]
    )
    assert result.exit_code == 2
    assert "did you mean 'multi-turn'?" in result.output
    assert not out.exists() and list(tmp_path.glob(".tidy*")) == []


def test_paper_list_with_a_paper_column_and_years_in_titles(tmp_path: Path) -> None:
    from culture_probe.survey import read_paper_csv

    path = tmp_path / "papers.csv"
    path.write_text(
        "Paper,Authors\n"
        'Cultural Bias in LLMs (2023),"Smith, A."\n'
        "Findings of SemEval 2024,Jones\n"
        "Beyond 2000 Tokens,Lee\n"
        "Culture Probes [1999],Kim\n",
        encoding="utf-8",
    )
    records = read_paper_csv(path)
    assert [(r.title, r.year) for r in records] == [
        ("Cultural Bias in LLMs", 2023),
        ("Findings of SemEval 2024", 2024),
        ("Beyond 2000 Tokens", None),
        ("Culture Probes", 1999),
    ]
    assert records[0].paper_id == "smith2023cultural"


def test_a_year_column_wins_over_the_title(tmp_path: Path) -> None:
    from culture_probe.survey import read_paper_csv

    path = tmp_path / "papers.csv"
    path.write_text("title,year\nA Study (2019),2021\nAnother (2019),n.d.\n", encoding="utf-8")
    assert [(r.title, r.year) for r in read_paper_csv(path)] == [
        ("A Study (2019)", 2021),
        ("Another (2019)", None),
    ]


def test_paper_list_without_a_title_column_names_wanted_and_found_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "papers.csv"
    path.write_text("name,authors,year\nCultural Bias,Smith,2023\n", encoding="utf-8")
    out = tmp_path / "review.xlsx"
    result = CliRunner().invoke(
        app, ["template", "--papers", str(path), "-o", str(out), "--taxonomy", str(TAXONOMY)]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{path}:1: no 'title' column in the header" in message
    assert "found columns: 'name', 'authors', 'year'" in message
    assert "expected a column named 'title', 'paper', 'paper_title'" in message
    assert not out.exists()


def test_long_list_with_a_paper_column_is_imported(tmp_path: Path, fields: tuple) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "Paper,dimension,category\n"
        "Cultural Bias in LLMs (2023),Demographic,Region\n"
        "Cultural Bias in LLMs (2023),Demographic,Language\n",
        encoding="utf-8",
    )
    (record,) = import_long_list(path, fields)
    assert (record.title, record.year) == ("Cultural Bias in LLMs", 2023)
    assert set(record.labels("demographic")) == {"region", "language"}
