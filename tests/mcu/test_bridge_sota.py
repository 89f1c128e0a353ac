"""The bridge's SOTA on a real emulated MCU: new weights into the model region, same graph only."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tinymlaas import tflite
from tinymlaas.config import Settings
from tinymlaas.edge.bridge import BoardFacts, BridgeInference, BridgeModules, Mcu
from tinymlaas.edge.package import pack
from tinymlaas.edge.tflm import Tflm
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.services.compile import compile_model
from tinymlaas.services.deployments import _model_data
from tinymlaas.services.mcu_device import emulate_flasher
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

pytestmark = [pytest.mark.lwm2m, pytest.mark.qemu]
BOARD = "lm3s6965evb"


def reweighted(model: bytes) -> bytes:
    """The same graph and quantization with different weights: the middle layer's negated."""
    m = tflite.parse(model)
    sub = m.subgraphs[0]
    weights = sorted((bytes(m.buffers[sub.tensors[op.inputs[1]].buffer].data) for op in sub.operators),
                     key=len)[-1]
    assert model.count(weights) == 1
    flipped = np.clip(-np.frombuffer(weights, dtype=np.int8).astype(np.int16), -127, 127).astype(np.int8)
    at = model.index(weights)
    return model[:at] + flipped.tobytes() + model[at + len(weights):]


@pytest.fixture(scope="module")
def cortex_m_builder() -> ModuleType:
    from mcu_helpers import load_cortex_m_builder

    return load_cortex_m_builder()


def test_model_region_swap_and_graph_refusal(cortex_m_builder: ModuleType, tmp_path: Path) -> None:
    if QemuEmulator.unavailable() or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc")
    settings = Settings()
    board = get_board(settings.targets_dir, BOARD)
    old = get_recipe("hello_world").load(settings.zoo_dir)
    new = reweighted(old)
    old_mod = compile_model(old, board, tmp_path / "old", name="hello_world")
    new_mod = compile_model(new, board, tmp_path / "new", name="hello_world")
    assert old_mod.graph_sha256 == new_mod.graph_sha256 and old_mod.data_sha256 != new_mod.data_sha256
    cb = cortex_m_builder
    cb.build(tmp_path / "old" / "model.tflite", board, tmp_path / "fw", "1.0.0", cb.Options("Os", True))

    facts = BoardFacts.read(settings.targets_dir / BOARD / "board.toml")
    mcu = Mcu(facts, tmp_path / "fw", emulate_flasher(board, "qemu"))
    try:
        modules = BridgeModules(mcu, on_change=lambda: None)
        manifest = new_mod.model_dump(mode="json")
        package = tmp_path / "new.zip"
        package.write_bytes(pack(manifest, "model_data.bin", _model_data(new, manifest)))
        assert modules.check(package) == ("hello_world", new_mod.model_sha256[:12])
        before = [mcu.infer(bytes([x]))[0] for x in (0x80, 0xA0, 0xC0)]
        asyncio.run(modules.install(package))
        asyncio.run(modules.activate())
        oracle = Tflm(new)
        for x, was in zip((0x80, 0xA0, 0xC0), before, strict=True):
            got, instructions = mcu.infer(bytes([x]))
            want = oracle.invoke(np.array([[np.int8(np.uint8(x).view(np.int8))]])).tobytes()
            assert got == want and instructions > 0
            assert got != was or x == 0x80
        assert BridgeInference(mcu).capabilities()[6] == new_mod.model_sha256

        # A retrained hello_world has the same graph (its numbers live in the data): accepted.
        retrained = get_recipe("hello_world").load(settings.zoo_dir, 7)
        re_mod = compile_model(retrained, board, tmp_path / "retrained", name="hello_world")
        doc = re_mod.model_dump(mode="json")
        (tmp_path / "re.zip").write_bytes(pack(doc, "model_data.bin", _model_data(retrained, doc)))
        modules.check(tmp_path / "re.zip")
        asyncio.run(modules.install(tmp_path / "re.zip"))
        asyncio.run(modules.activate())
        # Its quantization differs, and the firmware reports the model it now holds.
        assert re_mod.inputs[0].scale != old_mod.inputs[0].scale
        assert mcu.info["model"] == re_mod.model_sha256
        spec = mcu.tensors()["inputs"][0]
        assert spec["scale"] == pytest.approx(re_mod.inputs[0].scale, rel=1e-6)
        assert spec["zero_point"] == re_mod.inputs[0].zero_point
        oracle = Tflm(retrained)
        for x in (0x80, 0xA0, 0xC0):
            want = oracle.invoke(np.array([[np.int8(np.uint8(x).view(np.int8))]])).tobytes()
            assert mcu.infer(bytes([x]))[0] == want
        # The float variant is other code: it needs FOTA.
        flt = get_recipe("hello_world_float").load(settings.zoo_dir)
        flt_mod = compile_model(flt, board, tmp_path / "float", name="hello_world")
        doc = flt_mod.model_dump(mode="json")
        (tmp_path / "float.zip").write_bytes(pack(doc, "model_data.bin", _model_data(flt, doc)))
        with pytest.raises(ValueError, match="graph differs"):
            modules.check(tmp_path / "float.zip")
    finally:
        mcu.close()
