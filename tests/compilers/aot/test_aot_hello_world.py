"""hello_world end to end: compile service → C → host binary, byte for byte against TFLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import HOST_VARIANT_IDS, HOST_VARIANTS

from tinymlaas.compilers.aot.hostrun import CORTEX_M_CPUS, HostModule, cross_compile, header_macros
from tinymlaas.edge.tflm import Tflm
from tinymlaas.errors import DoesNotFit
from tinymlaas.models import Board
from tinymlaas.services.compile import compile_model, read_module


@pytest.mark.parametrize("cflags", HOST_VARIANTS, ids=HOST_VARIANT_IDS)
def test_every_int8_input_matches_tflm(hello_world: bytes, m3_board: Board, tmp_path: Path,
                                       cflags: tuple[str, ...]) -> None:
    manifest = compile_model(hello_world, m3_board, tmp_path / "mod", compiler="aot")
    tflm = Tflm(hello_world)
    inputs = np.arange(-128, 128, dtype=np.int8)
    with HostModule(tmp_path / "mod", cflags=cflags) as mod:
        ours = np.concatenate([mod.invoke(v[None]) for v in inputs])
    theirs = np.concatenate([tflm.invoke(np.array([[v]], np.int8)).ravel() for v in inputs])
    assert np.array_equal(ours, theirs), np.flatnonzero(ours != theirs)
    assert manifest.kind == "c-source" and manifest.compiler.name == "aot"


def test_manifest_and_header_describe_the_module(hello_world: bytes, m3_board: Board,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "mod"
    manifest = compile_model(hello_world, m3_board, out, compiler="aot")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.c", "model.h",
                                                     "model_data.bin"]
    assert read_module(out) == manifest
    m = header_macros(out / "model.h")
    assert m["MODEL_SHA256"] == f'"{manifest.model_sha256}"'
    assert int(m["MODEL_INPUT_BYTES"]) == 1 and int(m["MODEL_OUTPUT_BYTES"]) == 1
    assert int(m["MODEL_ARENA_BYTES"]) == manifest.memory.arena_bytes
    assert int(m["MODEL_INPUT_ZERO_POINT"]) == manifest.inputs[0].zero_point
    assert float(m["MODEL_OUTPUT_SCALE"].rstrip("f")) == pytest.approx(manifest.outputs[0].scale)
    # Two 16-value activations, ping-ponged; input and output stay in the caller's buffers.
    assert manifest.memory.arena_bytes == 32
    assert manifest.ops == ["FULLY_CONNECTED"]
    assert manifest.graph_sha256 and manifest.data_sha256
    assert manifest.memory.data_bytes
    assert manifest.memory.data_bytes >= manifest.memory.weights_bytes
    assert set(manifest.files) == {"model.c", "model.h", "model_data.bin"}
    # The model region's bytes ship as a file: a model-only deployment packs it as it is.
    blob = (out / "model_data.bin").read_bytes()
    assert len(blob) == manifest.memory.data_bytes
    assert manifest.files["model_data.bin"] == manifest.data_sha256


def test_name_sets_files_and_prefix(hello_world: bytes, m3_board: Board, tmp_path: Path) -> None:
    out = tmp_path / "kws"
    compile_model(hello_world, m3_board, out, compiler="aot", name="kws")
    assert (out / "kws.c").is_file() and (out / "kws.h").is_file()
    m = header_macros(out / "kws.h")
    assert "KWS_INPUT_BYTES" in m and "KWS_SECTION" in (out / "kws.h").read_text()
    assert "int kws_invoke(const int8_t *input, int8_t *output);" in (out / "kws.h").read_text()
    with HostModule(out, name="kws") as mod:
        assert mod.invoke(np.array([0], np.int8)).shape == (1,)


@pytest.mark.parametrize("arch", sorted(CORTEX_M_CPUS))
def test_cortex_m_compile_is_warning_free(hello_world: bytes, m3_board: Board, tmp_path: Path,
                                          arch: str) -> None:
    compile_model(hello_world, m3_board, tmp_path / "mod", compiler="aot")
    obj = cross_compile(tmp_path / "mod" / "model.c", tmp_path / "model.o", CORTEX_M_CPUS[arch],
                        extra=("-DMODEL_SECTION=__attribute__((section(\".tinymlaas_model\")))",))
    assert obj.stat().st_size > 0


def test_model_data_section_is_the_manifest_blob(hello_world: bytes, m3_board: Board,
                                                 tmp_path: Path) -> None:
    """What a model-only update would replace is exactly the bytes the manifest hashes."""
    import hashlib

    manifest = compile_model(hello_world, m3_board, tmp_path / "mod", compiler="aot")
    obj = cross_compile(tmp_path / "mod" / "model.c", tmp_path / "model.o", "cortex-m3",
                        extra=("-DMODEL_SECTION=__attribute__((section(\".tinymlaas_model\")))",))
    blob = tmp_path / "data.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "--only-section=.tinymlaas_model",
                    str(obj), str(blob)], check=True)
    assert blob.stat().st_size == manifest.memory.data_bytes
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == manifest.data_sha256


def test_fit_check_names_region_and_missing_bytes(hello_world: bytes, m3_board: Board,
                                                  tmp_path: Path) -> None:
    tiny = m3_board.model_copy(update={"ram_bytes": 16})
    with pytest.raises(DoesNotFit, match=r"RAM: 16 B missing") as exc:
        compile_model(hello_world, tiny, tmp_path / "mod", compiler="aot")
    assert exc.value.details == {"region": "ram", "missing_bytes": 16}
    assert not (tmp_path / "mod").exists()
    with pytest.raises(DoesNotFit, match="flash"):
        compile_model(hello_world, m3_board, tmp_path / "mod", compiler="aot",
                      options={"reserve_flash_bytes": m3_board.flash_bytes})


def test_cli_compile_writes_the_module(hello_world: bytes, tmp_path: Path) -> None:
    targets = tmp_path / "targets" / "cm3"
    targets.mkdir(parents=True)
    (targets / "board.toml").write_text(
        'name = "cm3"\ndescription = "test Cortex-M3"\narch = "armv7-m"\ncpu = "cortex-m3"\n'
        'family = "test"\nmodule_kind = "c-source"\ncompilers = ["aot"]\n'
        "flash_bytes = 262144\nram_bytes = 65536\n"
        '[builder]\nimage = "tinymlaas/builder-cm3"\ncontext = "builder"\n')
    model = tmp_path / "hello.tflite"
    model.write_bytes(hello_world)
    env = {**os.environ, "TINYMLAAS_TARGETS_DIR": str(tmp_path / "targets")}
    cli = [sys.executable, "-m", "tinymlaas.cli.main"]
    ok = subprocess.run([*cli, "compile", str(model), "--target", "cm3", "--compiler", "aot",
                         "-o", str(tmp_path / "out"), "--name", "sine"],
                        capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["name"] == "sine"
    assert (tmp_path / "out" / "sine.c").is_file()
    small = subprocess.run([*cli, "compile", str(model), "--target", "cm3", "--compiler", "aot",
                            "-o", str(tmp_path / "out2"), "-O", "reserve_ram_bytes=65530"],
                           capture_output=True, text=True, env=env, check=False)
    assert small.returncode == 2
    assert "ram" in small.stderr.lower() and "missing" in small.stderr
