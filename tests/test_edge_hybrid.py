"""The device's hybrid policy on its own: confidence from int8 outputs, the cloud's answer in the
device's output tensor, what is escalated and counted, a failed escalation, a policy kept across
a reboot. The model runtime is a small stand-in here; the service's and real devices' side are in
tests/test_hybrid.py and the CFO's scenarios."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tinymlaas.edge.hybrid import HybridRuntime, Policy, probabilities, quantized
from tinymlaas.edge.lwm2m.vocab import Tiny

SOFTMAX = {"dtype": "int8", "scale": 1 / 256, "zero_point": -128}


def codes(*probs: float) -> bytes:
    return quantized(list(probs), SOFTMAX)


class Outputs:
    """An inference runtime answering a fixed output per input byte."""

    def __init__(self, answers: dict[int, bytes]) -> None:
        self.answers = answers

    def capabilities(self) -> dict[int, Any]:
        return {Tiny.TENSORS: json.dumps({"inputs": [], "outputs": [SOFTMAX | {"shape": [1, 3]}]})}

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        return self.answers[tensor[0]], 10, 1000


def test_probabilities_from_softmax_codes_or_through_a_softmax() -> None:
    assert probabilities(codes(0.9, 0.05, 0.05), SOFTMAX) == pytest.approx([0.9, 0.05, 0.05], abs=1 / 256)
    logits = {"dtype": "int8", "scale": 0.1, "zero_point": 0}  # not a distribution: a softmax over it
    probs = probabilities(bytes([20, 0, 256 - 20]), logits)
    assert sum(probs) == pytest.approx(1.0) and probs[0] == pytest.approx(0.8668, abs=1e-3)
    with pytest.raises(ValueError, match="not quantized"):
        probabilities(b"\x00", {"dtype": "float32"})


def test_the_clouds_values_become_the_devices_output_codes() -> None:
    assert quantized([1.0, 0.0, 2.0], SOFTMAX) == bytes([127, 128, 127])  # saturating int8 codes
    assert list(probabilities(quantized([0.25, 0.75, 0.0], SOFTMAX), SOFTMAX)) == [0.25, 0.75, 0.0]


def test_policies_parse_or_refuse() -> None:
    assert Policy.parse({"threshold": 0.7, "cloud": "c1"}) == Policy(0.7, "c1")
    assert Policy.parse({"threshold": None}) is None and Policy.parse({}) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        Policy.parse({"threshold": 1.5})


def test_uncertain_inferences_are_escalated_and_counted(tmp_path: Path) -> None:
    sure, unsure = codes(0.95, 0.03, 0.02), codes(0.5, 0.3, 0.2)
    sent: list[bytes] = []

    async def cloud(tensor: bytes) -> list[float]:
        sent.append(tensor)
        return [0.1, 0.8, 0.1]

    rt = HybridRuntime(Outputs({1: sure, 2: unsure}), cloud, tmp_path / "hybrid.json")

    async def run() -> list[tuple[bytes, int, int | None, bool | None]]:
        out = [await rt.run(bytes([1]))]  # no policy: every inference is local
        rt.set_policy(Policy(0.8, "c1"))
        out += [await rt.run(bytes([1])), await rt.run(bytes([2])), await rt.run(bytes([2]))]
        return out

    results = asyncio.run(run())
    assert [r[3] for r in results] == [None, False, True, True]
    assert results[1][0] == sure and results[2][0] == codes(0.1, 0.8, 0.1)
    assert results[2][2] == 1000 and results[2][1] >= 10  # the device's own count; latency includes the trip
    assert sent == [bytes([2]), bytes([2])]
    assert rt.status() == {"threshold": 0.8, "cloud": "c1", "local": 2, "escalated": 2, "failed": 0}
    # The policy outlives a reboot; turning it off forgets it.
    assert HybridRuntime(Outputs({}), cloud, tmp_path / "hybrid.json").policy == Policy(0.8, "c1")
    rt.set_policy(None)
    assert HybridRuntime(Outputs({}), cloud, tmp_path / "hybrid.json").policy is None


def test_an_escalation_without_answer_keeps_the_local_one() -> None:
    unsure = codes(0.5, 0.3, 0.2)

    async def down(tensor: bytes) -> list[float]:
        raise OSError("connection refused")

    async def wrong(tensor: bytes) -> list[float]:
        return [1.0]

    for cloud in (down, wrong):
        rt = HybridRuntime(Outputs({2: unsure}), cloud)
        rt.set_policy(Policy(0.8))
        output, _, _, escalated = asyncio.run(rt.run(bytes([2])))
        assert (output, escalated) == (unsure, False)
        assert rt.status() == {"threshold": 0.8, "cloud": "", "local": 1, "escalated": 0, "failed": 1}
