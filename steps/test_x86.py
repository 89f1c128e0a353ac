"""Steps for the x86 target: the real builder and device containers, the real TFLM."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tinymlaas.builders.container import DockerBuilder
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.images import current_image, docker_client
from tinymlaas.models import Board, FirmwareManifest, ModuleManifest
from tinymlaas.net import free_port
from tinymlaas.services.compile import compile_model
from tinymlaas.services.x86_device import DeviceClient
from tinymlaas.zoo import get_recipe

scenarios("x86")

BoardNamed = Callable[[str], Board]


@pytest.fixture
def ctx() -> dict[str, Any]:
    """What one scenario's steps hand each other."""
    return {}


@when(parsers.parse('it is compiled for "{target}"'), target_fixture="module")
def compiled(model_bytes: bytes, board_named: BoardNamed, workdir: Path, target: str) -> ModuleManifest:
    return compile_model(model_bytes, board_named(target), workdir / "module", name="hello_world")


@when("it is built by the builder container", target_fixture="firmware")
def built(module: ModuleManifest, board_named: BoardNamed, workdir: Path, images: dict) -> FirmwareManifest:
    return DockerBuilder().build(workdir / "module", board_named(module.target), workdir / "fw")


@when("the OS image is booted in a device container", target_fixture="device")
def booted(
    firmware: FirmwareManifest, board_named: BoardNamed, workdir: Path, request: pytest.FixtureRequest,
    ctx: dict[str, Any], settings: Settings,
) -> DeviceClient:
    board = board_named(firmware.board)
    port = free_port()
    image = current_image(settings, board.device.image, docker_client())
    container = (
        DockerContainer(image, _wait_strategy=LogMessageWaitStrategy(" READY "))
        .with_command(["--port", str(port)])
        .with_volume_mapping(str(workdir / "fw"), "/flash", "ro")
        .with_kwargs(network_mode="host", init=True)
    )
    container.start()
    request.addfinalizer(container.stop)
    stdout, _ = container.get_logs()
    ctx["banner"] = next(ln for ln in stdout.decode().splitlines() if " READY " in ln)
    return DeviceClient(port)


@then(parsers.parse('the device banner names board "{board}" and the model hash'))
def banner(ctx: dict[str, Any], module: ModuleManifest, board: str) -> None:
    assert f"board={board}" in ctx["banner"]
    assert f"model={module.model_sha256[:12]}" in ctx["banner"]


def _inputs(module: ModuleManifest) -> list[np.ndarray]:
    t = module.inputs[0]
    return [quantize(np.array([[x]]), t.scale, t.zero_point, np.int8) for x in range(7)]


@then(parsers.parse("for x = 0..6 the dequantized outputs are within {tol:f} of sin(x)"))
def close_to_sine(device: DeviceClient, module: ModuleManifest, ctx: dict[str, Any],
                  tol: float) -> None:
    replies = [device.infer_raw(q.ravel().tolist()) for q in _inputs(module)]
    ctx["device_raw"] = [r["output"] for r in replies]
    errors = [abs(r["values"][0] - math.sin(x)) for x, r in enumerate(replies)]
    assert max(errors) < tol, errors


@then("the int8 outputs equal those of the in-process TFLM interpreter byte for byte")
def bit_exact(model_bytes: bytes, module: ModuleManifest, ctx: dict[str, Any]) -> None:
    oracle = Tflm(model_bytes)
    expected = [oracle.invoke(q).ravel().tolist() for q in _inputs(module)]
    assert ctx["device_raw"] == expected


def _run_contract(image: str, model: bytes, root: Path) -> Path:
    """The partner contract, literally: docker run --network none -v IN:/in -v OUT:/out."""
    inp, out = root / "in", root / "out"
    inp.mkdir(parents=True)
    out.mkdir()
    (inp / "model.tflite").write_bytes(model)
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{inp}:/in:ro", "-v", f"{out}:/out",
         image, "/in/model.tflite"],
        check=True, capture_output=True, timeout=300,
    )
    return out


@when("the builder container is run on the bare model with no network", target_fixture="contract_out")
def contract_run(model_bytes: bytes, board_named: BoardNamed, workdir: Path, images: dict,
                 settings: Settings) -> Path:
    image = current_image(settings, board_named("x86-tflm").builder.image, docker_client())
    return _run_contract(image, model_bytes,
                         workdir / "a")


@then(parsers.parse('it writes an OS image and a manifest for board "{board}"'))
def contract_output(contract_out: Path, model_bytes: bytes, board: str) -> None:
    manifest = FirmwareManifest.model_validate_json((contract_out / "manifest.json").read_text())
    image = contract_out / manifest.image
    assert manifest.board == board
    assert manifest.model_sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert manifest.image_sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert manifest.headroom["ram"] > 0 and manifest.headroom["flash"] > 0


@then("building the same model twice gives the same image bytes")
def reproducible(contract_out: Path, model_bytes: bytes, board_named: BoardNamed, workdir: Path,
                 settings: Settings) -> None:
    image = current_image(settings, board_named("x86-tflm").builder.image, docker_client())
    again = _run_contract(image, model_bytes,
                          workdir / "b")
    assert (again / "firmware.pyz").read_bytes() == (contract_out / "firmware.pyz").read_bytes()


@given(parsers.parse("a model file that is {kind}"), target_fixture="model_bytes")
def bad_model(settings: Settings, kind: str) -> bytes:
    good = get_recipe("hello_world").load(settings.zoo_dir)
    return {
        "empty": b"",
        "not TFLite": json.dumps({"this": "is json"}).encode(),
        "corrupt": good[:96],  # a real header, then the file stops
    }[kind]


@pytest.fixture
def model_file(workdir: Path, model_bytes: bytes) -> Path:
    path = workdir / "model.tflite"
    path.write_bytes(model_bytes)
    return path


@when(parsers.parse('I run tinymlaas compile on it for "{target}"'), target_fixture="cli")
def run_compile(model_file: Path, workdir: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinymlaas.cli.main", "compile", str(model_file),
         "--target", target, "-o", str(workdir / "out-module")],
        capture_output=True, text=True, timeout=120, check=False,
    )


@then(parsers.parse("the command exits with code {code:d}"))
def exit_code(cli: subprocess.CompletedProcess, code: int) -> None:
    assert cli.returncode == code, cli.stderr


@then(parsers.parse('stderr is one line that says "{reason}"'))
def one_line(cli: subprocess.CompletedProcess, reason: str) -> None:
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1, cli.stderr
    assert lines[0].startswith("error: ") and reason in lines[0], lines[0]


@then("no module directory was written")
def nothing_written(workdir: Path) -> None:
    assert sorted(p.name for p in workdir.iterdir()) == ["model.tflite"]
