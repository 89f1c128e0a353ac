"""The device's side of hybrid inference ("cloud & TinyML"): the device runs its int8 model on every
input; when the top class's probability is below the policy's threshold it escalates the input to
the service's cloud model and answers with the cloud's output instead (quantized into its own
output tensor, so every answer reads the same). An escalation that gets no answer keeps the
local one. The device counts what it answered itself and what the cloud did.

:class:`HybridRuntime` wraps any inference runtime (the x86 firmware's, the MCU bridge's) and is
one itself; the protocol agent supplies how to escalate (HTTP pull: a device route; LwM2M: a CoAP
request to the server) and sets the policy the service sends. The policy is kept in a file when
the device has one, so it outlives a reboot. Standard library only: it runs in the firmware.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tinymlaas.edge.lwm2m.vocab import Tiny

log = logging.getLogger("tinymlaas.edge.hybrid")

#: Sends the raw input tensor to the cloud model; returns its output values (class probabilities).
Escalate = Callable[[bytes], Awaitable[list[float]]]


class Runtime(Protocol):
    def capabilities(self) -> dict[int, Any]: ...

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]: ...


@dataclass(frozen=True)
class Policy:
    threshold: float
    cloud: str = ""

    @classmethod
    def parse(cls, fields: dict[str, Any]) -> Policy | None:
        """From what the service sent: no (or a null) threshold turns escalation off."""
        threshold = fields.get("threshold")
        if threshold is None:
            return None
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold {threshold} is not between 0 and 1")
        return cls(threshold, str(fields.get("cloud") or ""))


@dataclass
class Counts:
    local: int = 0
    escalated: int = 0
    failed: int = 0


def output_spec(capabilities: dict[int, Any]) -> dict[str, Any]:
    tensors = capabilities.get(Tiny.TENSORS) or "{}"
    spec: dict[str, Any] = (json.loads(tensors) if isinstance(tensors, str) else tensors).get(
        "outputs", [{}])[0]
    return spec


def probabilities(raw: bytes, spec: dict[str, Any]) -> list[float]:
    """The output as class probabilities: dequantized int8 codes, through a softmax unless they are
    one already (a model ending in softmax)."""
    if spec.get("scale") is None:
        raise ValueError("the model's output is not quantized: the policy works on int8 outputs")
    codes = [b - 256 if b > 127 else b for b in raw] if spec.get("dtype", "int8") == "int8" else list(raw)
    values = [(c - int(spec["zero_point"])) * float(spec["scale"]) for c in codes]
    step = float(spec["scale"]) * len(values)
    if all(-1e-9 <= v <= 1 + 1e-9 for v in values) and abs(sum(values) - 1.0) <= max(step, 0.02):
        return values
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def quantized(values: list[float], spec: dict[str, Any]) -> bytes:
    """The cloud's output values as this model's output tensor (saturating int8 codes)."""
    lo, hi = (-128, 127) if spec.get("dtype", "int8") == "int8" else (0, 255)
    codes = [min(hi, max(lo, round(v / float(spec["scale"])) + int(spec["zero_point"]))) for v in values]
    return bytes(c & 0xFF for c in codes)


class HybridRuntime:
    """An inference runtime that applies the hybrid policy to another one's answers."""

    def __init__(self, inner: Runtime, escalate: Escalate, state_file: Path | None = None) -> None:
        self.inner = inner
        self.escalate = escalate
        self.state_file = state_file
        self.policy: Policy | None = None
        self.counts = Counts()
        if state_file is not None and state_file.is_file():
            try:
                self.policy = Policy.parse(json.loads(state_file.read_text()))
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring the saved hybrid policy: %s", exc)

    def set_policy(self, policy: Policy | None) -> None:
        self.policy = policy
        if self.state_file is not None:
            if policy is None:
                self.state_file.unlink(missing_ok=True)
            else:
                self.state_file.parent.mkdir(parents=True, exist_ok=True)
                self.state_file.write_text(json.dumps(asdict(policy)))
        log.info("hybrid policy: %s", "off (every inference answered here)" if policy is None else
                 f"escalate below {policy.threshold:g} to cloud endpoint {policy.cloud or '(unnamed)'}")

    def status(self) -> dict[str, Any]:
        """What the device reports: its policy and its counts."""
        return {"threshold": self.policy.threshold if self.policy else None,
                "cloud": self.policy.cloud if self.policy else None, **asdict(self.counts)}

    def capabilities(self) -> dict[int, Any]:
        return self.inner.capabilities()

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        output, latency_us, instructions, _ = await self.run(tensor)
        return output, latency_us, instructions

    async def run(self, tensor: bytes) -> tuple[bytes, int, int | None, bool | None]:
        """(output, latency in us, instructions, escalated: None without a policy)."""
        output, latency_us, instructions = await self.inner.infer(tensor)
        policy = self.policy
        if policy is None:
            self.counts.local += 1
            return output, latency_us, instructions, None
        spec = output_spec(self.inner.capabilities())
        if max(probabilities(output, spec)) >= policy.threshold:
            self.counts.local += 1
            return output, latency_us, instructions, False
        t0 = time.perf_counter_ns()
        try:
            values = await self.escalate(tensor)
            answer = quantized(values, spec)
            if len(answer) != len(output):
                raise ValueError(f"the cloud answered {len(answer)} values; the model has {len(output)}")
        except Exception as exc:  # no answer from the cloud: the device's own one stands
            log.warning("escalation failed (%s); answering locally", exc)
            self.counts.local += 1
            self.counts.failed += 1
            return output, latency_us, instructions, False
        self.counts.escalated += 1
        return answer, latency_us + (time.perf_counter_ns() - t0) // 1000, instructions, True
