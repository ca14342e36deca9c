"""Bad study input: one clear message naming file, line and key; no traceback; nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from culture_probe.errors import InputError
from culture_probe.planning import prepare


@pytest.fixture
def project(tmp_path: Path, repo: Path) -> Path:
    """A copy of the shipped taxonomy and probes that a test may break."""
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, fragment: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in {path}")


def _error(study: Path) -> str:
    with pytest.raises(InputError) as caught:
        prepare(study)
    return str(caught.value)


def test_malformed_yaml_names_the_line(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "option_orders: [canonical, reversed]", "option_orders: [canonical, reversed")
    message = _error(study)
    assert "malformed YAML" in message
    assert str(study) in message


def test_unknown_key_suggests_the_near_miss(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "option_orders:", "optoin_orders:")
    message = _error(study)
    line = _line_of(study, "optoin_orders")
    assert f"{study}:{line}: key 'optoin_orders': unknown key in a study" in message
    assert "did you mean 'option_orders'?" in message


def test_unknown_country_is_named_with_a_suggestion(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "[US,", "[USA,")
    message = _error(study)
    assert f"{study}:{_line_of(study, '[USA,')}" in message
    assert "key 'axes.region'" in message
    assert "unknown Region value 'USA'" in message
    assert "did you mean 'US'?" in message


def test_unknown_axis_and_placebo_are_named(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "  region:", "  regoin:")
    assert "did you mean 'region'?" in _error(study)
    _edit(study, "  regoin:", "  region:")
    _edit(study, "placebos: [", "placebos: [colour_gren, ")
    message = _error(study)
    assert "unknown placebo 'colour_gren'" in message
    assert "did you mean 'colour_green'?" in message


def test_missing_probe_file_is_named(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "../probes/values/items.yaml", "../probes/values/itmes.yaml")
    message = _error(study)
    assert "file not found" in message and "itmes.yaml" in message
    assert "key 'items'" in message


def test_probe_item_with_a_misspelt_field(project: Path) -> None:
    items = project / "probes" / "values" / "items.yaml"
    _edit(items, "    paraphrases:", "    paraphrasses:")
    message = _error(project / "taxonomy" / "values.yaml")
    assert f"{items}:{_line_of(items, 'paraphrasses')}" in message
    assert "did you mean 'paraphrases'?" in message


def test_template_with_an_undefined_variable(project: Path) -> None:
    template = project / "probes" / "templates" / "multiple_choice.en.j2"
    _edit(template, "{{ question }}", "{{ questoin }}")
    message = _error(project / "taxonomy" / "values.yaml")
    assert f"{template}:1" in message
    assert "undefined variable" in message and "questoin" in message
    assert "question" in message  # the variables that do exist are listed


def test_template_reaching_python_internals_is_refused(project: Path) -> None:
    template = project / "probes" / "templates" / "multiple_choice.en.j2"
    template.write_text("{{ question }}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    message = _error(project / "taxonomy" / "values.yaml")
    assert f"{template}:2" in message
    assert "Python internals" in message


def test_framing_reaching_internals_names_the_yaml_line(project: Path) -> None:
    framings = project / "probes" / "framings" / "persona.en.yaml"
    _edit(
        framings,
        'system: "Imagine you are {{ persona }}."',
        'system: "{{ persona.__class__.__base__.__subclasses__() }}"',
    )
    message = _error(project / "taxonomy" / "values.yaml")
    assert f"{framings}:{_line_of(framings, '__subclasses__')}" in message
    assert "key 'system'" in message and "Python internals" in message


def test_cli_exits_non_zero_with_one_line_and_writes_nothing(project: Path) -> None:
    study = project / "taxonomy" / "values.yaml"
    _edit(study, "[US,", "[USA,")
    out = project / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "culture_probe.cli", "run", str(study), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "unknown Region value 'USA'" in completed.stderr
    assert "did you mean 'US'?" in completed.stderr
    assert not out.exists()
    assert not (project / "reports").exists()
