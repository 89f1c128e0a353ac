"""The real TFLM interpreter (``tflite_micro`` wheel): runner, oracle and probe.

Loading a model TFLM cannot handle, or giving it too small an arena, can kill
the process (segfault), so anything that looks at an untrusted model runs in a
child process (:func:`probe`); :class:`Tflm` is for models already probed.
This module needs only numpy and the wheel: it also runs on the x86 device.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

_ALLOC_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


class TflmError(RuntimeError):
    """TFLM refused or crashed on a model; the message says how."""


def quantize(values: npt.ArrayLike, scale: float, zero_point: int, dtype: npt.DTypeLike) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, dtype=np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: npt.ArrayLike, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(values, dtype=np.float64) - zero_point) * scale


class Tflm:
    """One TFLM interpreter; ``invoke`` takes and returns raw tensors (first I/O), ``invoke_all``
    every input and output."""

    def __init__(self, model: bytes, arena_bytes: int | None = None, *, inputs: int = 1,
                 outputs: int = 1) -> None:
        """``inputs``/``outputs``: how many tensors the model has (the wheel cannot say)."""
        from tflite_micro.python.tflite_micro import runtime

        self._model = model
        self._it = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes or _default_arena(model))
        self.inputs = [self._it.get_input_details(k) for k in range(inputs)]
        self.outputs = [self._it.get_output_details(k) for k in range(outputs)]
        self.input, self.output = self.inputs[0], self.outputs[0]

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        return self.invoke_all([tensor])[0]

    def invoke_all(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        """One inference: raw values of each input tensor in, of each output tensor out."""
        for k, (tensor, d) in enumerate(zip(tensors, self.inputs, strict=True)):
            self._it.set_input(np.asarray(tensor, dtype=d["dtype"]).reshape(d["shape"]), k)
        self._it.invoke()
        return [np.array(self._it.get_output(k), copy=True) for k in range(len(self.outputs))]

    def invoke_float(self, values: np.ndarray) -> np.ndarray:
        """Quantize, run, dequantize; float models pass straight through."""
        q_in, q_out = self.input["quantization_parameters"], self.output["quantization_parameters"]
        if np.issubdtype(self.input["dtype"], np.integer):
            values = quantize(values, q_in["scales"][0], q_in["zero_points"][0], self.input["dtype"])
        out = self.invoke(values)
        if np.issubdtype(self.output["dtype"], np.integer):
            return dequantize(out, q_out["scales"][0], q_out["zero_points"][0])
        return out.astype(np.float64)


def _default_arena(model: bytes) -> int:
    return max(16 * 1024, len(model) * 10)


@dataclass(frozen=True)
class ProbeResult:
    """What TFLM reports for a model: its allocation report and the smallest arena that runs."""

    arena_reported: int
    arena_min: int


def _child(model_path: str, arena: int) -> int:
    """Body of the probe child process: allocate, invoke once, report."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(model_path, arena_size=arena)
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
    it.invoke()
    it.print_allocations()
    return 0


def _try(model_path: Path, arena: int) -> tuple[bool, str]:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tinymlaas.edge.tflm import _child; "
         "sys.exit(_child(sys.argv[1], int(sys.argv[2])))", str(model_path), str(arena)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return proc.returncode == 0, proc.stderr + proc.stdout


def probe(model: bytes) -> ProbeResult:
    """Run the model in TFLM in child processes; find the smallest working arena.

    Raises TflmError naming TFLM's own complaint when the model does not run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        big = _default_arena(model) * 4
        ok, log = _try(path, big)
        if not ok:
            lines = [ln for ln in log.strip().splitlines() if ln.strip()]
            reason = next((ln for ln in lines if "not supported" in ln or "Didn't find" in ln),
                          lines[-1] if lines else "crashed")
            raise TflmError(f"TFLM cannot run this model: {reason.strip()}")
        m = _ALLOC_TOTAL.search(log)
        reported = int(m.group(1)) if m else 0
        lo, hi = 0, max(reported, 16)  # lo fails, hi works
        ok, _ = _try(path, hi)
        while not ok:
            lo, hi = hi, hi * 2
            ok, _ = _try(path, hi)
        while hi - lo > 16:
            mid = (lo + hi) // 2 // 16 * 16
            if mid <= lo:
                break
            ok, _ = _try(path, mid)
            lo, hi = (lo, mid) if ok else (mid, hi)
        return ProbeResult(arena_reported=reported, arena_min=hi)


def main() -> None:
    """``python -m tinymlaas.edge.tflm MODEL``: print the probe as JSON."""
    result = probe(Path(sys.argv[1]).read_bytes())
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
