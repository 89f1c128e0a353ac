"""CLI edges: option parsing and one-line errors with the family's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinymlaas.cli.main import parse_options
from tinymlaas.errors import InvalidInput


def test_parse_options() -> None:
    assert parse_options(["a=1", "b=x", "c=[1,2]", "d=true"]) == {"a": 1, "b": "x", "c": [1, 2], "d": True}
    with pytest.raises(InvalidInput, match="key=value"):
        parse_options(["novalue"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymlaas.cli.main", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    r = _cli("compile", str(tmp_path / "nope.tflite"), "-t", "x86-tflm", "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: no such model file: {tmp_path / 'nope.tflite'}"


def test_targets_lists_memory() -> None:
    r = _cli("targets")
    assert r.returncode == 0 and "x86-tflm" in r.stdout and "16,777,216" in r.stdout


def test_serve_names_the_orchestrators_it_knows() -> None:
    r = _cli("serve", "--orchestrator", "carrier-pigeon")
    assert r.returncode == 3
    assert r.stderr.strip() == "error: no orchestrator named 'carrier-pigeon'; available: http-pull, lwm2m"
