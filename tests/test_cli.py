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


@pytest.mark.parametrize("args", [
    ["comple"], ["compile"], ["targets", "extra"], ["targets", "--bogus"],
    ["compile", "m.tflite", "--target"], ["run", "fw.elf", "-t", "lm3s6965evb"]])
def test_every_usage_error_is_one_line_and_exit_2(args: list[str]) -> None:
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr


def test_version_and_json_tables() -> None:
    from tinymlaas import __version__

    assert _cli("--version").stdout.strip() == f"tinymlaas {__version__}"
    import json

    boards = json.loads(_cli("targets", "--json").stdout)
    assert {b["name"] for b in boards} >= {"x86-tflm", "lm3s6965evb"}
    cards = json.loads(_cli("compilers", "--json").stdout)
    assert {c["name"] for c in cards} == {"aot", "tflm"} and all(c["ops"] for c in cards)
    assert {r["name"] for r in json.loads(_cli("zoo", "list", "--json").stdout)} >= {"hello_world"}


def test_compilers_coverage_says_what_each_compiler_takes(hello_world: bytes, tmp_path: Path) -> None:
    import json

    model = tmp_path / "hw.tflite"
    model.write_bytes(hello_world)
    rows = json.loads(_cli("compilers", "--coverage", str(model), "--json").stdout)[str(model)]
    assert [(r["op"], r["aot"], r["tflm"]) for r in rows] == [("FULLY_CONNECTED", True, True)]
    r = _cli("compilers", "--coverage", str(tmp_path / "missing.tflite"))
    assert r.returncode == 2 and r.stderr.startswith("error: no such model file")
