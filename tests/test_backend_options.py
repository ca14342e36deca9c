"""Backend options declared once: unknown keys refused with the valid ones, values typed, help text."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from culture_probe.backends import create_backend, options_help
from culture_probe.backends.hf import HFOptions
from culture_probe.backends.openai import OpenAIOptions
from culture_probe.backends.options import options_record, parse_options
from culture_probe.backends.vllm import VLLMOptions
from culture_probe.errors import InputError


@dataclass(frozen=True)
class Demo:
    batch_size: int = field(default=16, metadata={"help": "prompts per batch"})
    threads: int | None = field(default=None, metadata={"help": "threads"})
    scale: float = field(default=1.0, metadata={"help": "a factor"})
    compile: bool = field(default=False, metadata={"help": "compile"})
    token: str | None = field(default=None, metadata={"help": "a secret", "secret": True})


def test_a_misspelt_key_is_refused_naming_the_key_it_resembles_and_every_valid_one() -> None:
    with pytest.raises(InputError) as caught:
        parse_options(Demo, {"batchsize": 8})

    message = str(caught.value)
    assert "key 'batchsize'" in message
    assert "did you mean 'batch_size'?" in message
    assert "valid options: batch_size, compile, scale, threads, token" in message


def test_a_key_like_no_valid_one_gets_the_list_without_a_guess() -> None:
    with pytest.raises(InputError) as caught:
        parse_options(Demo, {"colour": "red"})

    assert "did you mean" not in str(caught.value)
    assert "valid options: batch_size" in str(caught.value)


def test_text_from_the_command_line_becomes_the_declared_type() -> None:
    parsed = parse_options(
        Demo, {"batch_size": "8", "threads": "none", "scale": "2", "compile": "true", "token": 12}
    )

    assert parsed == Demo(batch_size=8, threads=None, scale=2.0, compile=True, token="12")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("batch_size", "eight", "--option batch_size expects a whole number, got 'eight'"),
        ("batch_size", 2.5, "--option batch_size expects a whole number, got 2.5"),
        ("batch_size", True, "--option batch_size expects a whole number, got True"),
        ("threads", "many", "--option threads expects a whole number or none, got 'many'"),
        ("scale", "big", "--option scale expects a number, got 'big'"),
        ("compile", "yes", "--option compile expects true or false, got 'yes'"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key_and_the_type_expected(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_options(Demo, {key: value})

    assert str(caught.value) == expected


def test_the_manifest_record_leaves_secrets_out() -> None:
    assert options_record(Demo(token="sk-1")) == {
        "batch_size": 16,
        "threads": None,
        "scale": 1.0,
        "compile": False,
    }
    assert "api_key" not in options_record(OpenAIOptions(api_key="sk-1"))


def test_create_backend_refuses_a_misspelt_hf_option_before_loading_anything() -> None:
    with pytest.raises(InputError, match=r"batchsize.*did you mean 'batch_size'\?"):
        create_backend("hf", model="embedded", batchsize=8)


def test_create_backend_refuses_a_cli_flag_the_backend_does_not_take() -> None:
    with pytest.raises(InputError, match="the openai backend does not take --batch-size"):
        create_backend("openai", model="m", batch_size=32)


def test_the_cli_refuses_option_batchsize_naming_batch_size(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable, "-m", "culture_probe.cli", "score",
            str(repo / "taxonomy" / "values.yaml"), "--items", "family_importance",
            "--out", str(out), "--option", "batchsize=8",
        ],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip

    assert result.returncode == 2
    assert "did you mean 'batch_size'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("backend", "declared"), [("hf", HFOptions), ("vllm", VLLMOptions), ("openai", OpenAIOptions)]
)
def test_the_help_lists_every_declared_option_with_its_default(
    backend: str, declared: type
) -> None:
    text = options_help(backend)

    for name in declared.__dataclass_fields__:
        assert f"\n  {name} (" in text
    assert f"options of the {backend} backend" in text.splitlines()[0]


def test_the_hf_help_line_shows_type_default_and_help() -> None:
    lines = options_help("hf").splitlines()

    assert (
        "  batch_size (a whole number, at least 1; default 16): prompts per padded batch without "
        "prefix sharing, and per generation batch" in lines
    )
    assert any(line.startswith("  fused_layers (true or false; default true): ") for line in lines)
