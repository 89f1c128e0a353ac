"""Running generated modules on the host: build a shared library with gcc, call it.

Tests and benchmarks compare these results with TFLM byte for byte; the same
C source is what the Cortex-M firmware compiles.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinymlaas.errors import BuildFailed

#: Warnings are errors: the generated code must be clean on every compiler we use.
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared")
CORTEX_M_CPUS = {"armv6-m": "cortex-m0", "armv7-m": "cortex-m3", "armv7e-m": "cortex-m4"}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        raise BuildFailed(f"{cmd[0]} failed ({proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[:2000]}")


def header_macros(header: Path) -> dict[str, str]:
    """``#define NAME value`` lines of a generated header."""
    return dict(re.findall(r"^#define (\w+) (.+)$", header.read_text(), flags=re.M))


def cross_compile(source: Path, out: Path, cpu: str = "cortex-m3", opt: str = "-Os",
                  extra: tuple[str, ...] = ()) -> Path:
    """Compile one generated source for a Cortex-M with arm-none-eabi-gcc (warnings fail)."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise BuildFailed("arm-none-eabi-gcc is not installed (Debian: gcc-arm-none-eabi)")
    _run([gcc, "-std=c99", opt, f"-mcpu={cpu}", "-mthumb", "-Wall", "-Wextra", "-Werror",
          "-ffunction-sections", "-fdata-sections", *extra, "-c", str(source), "-o", str(out)])
    return out


class HostModule:
    """A generated module built as a host shared library; ``invoke`` takes raw tensors."""

    def __init__(self, module_dir: Path, name: str = "model",
                 cflags: tuple[str, ...] = HOST_CFLAGS) -> None:
        self.name = name
        macros = header_macros(module_dir / f"{name}.h")
        p = name.upper()
        self.input_bytes = int(macros[f"{p}_INPUT_BYTES"])
        self.output_bytes = int(macros[f"{p}_OUTPUT_BYTES"])
        self.input_float = macros[f"{p}_INPUT_IS_FLOAT"] == "1"
        self.output_float = macros[f"{p}_OUTPUT_IS_FLOAT"] == "1"
        self.arena_bytes = int(macros[f"{p}_ARENA_BYTES"])
        self._tmp = tempfile.TemporaryDirectory(prefix="aot-host-")
        lib = Path(self._tmp.name) / f"lib{name}.so"
        gcc = shutil.which("gcc") or "gcc"
        _run([gcc, *cflags, "-I", str(module_dir), str(module_dir / f"{name}.c"), "-o", str(lib)])
        self._lib = ctypes.CDLL(str(lib))
        self._fn = getattr(self._lib, f"{name}_invoke")
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._fn.restype = ctypes.c_int

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """One inference on raw input values (int8, or float32 for float models)."""
        dtype = np.float32 if self.input_float else np.int8
        x = np.ascontiguousarray(np.asarray(tensor, dtype=dtype).ravel())
        if x.nbytes != self.input_bytes:
            raise ValueError(f"input has {x.nbytes} bytes, the module takes {self.input_bytes}")
        y = np.zeros(self.output_bytes, dtype=np.uint8)
        rc = self._fn(x.ctypes.data, y.ctypes.data)
        if rc != 0:
            raise RuntimeError(f"{self.name}_invoke returned {rc}")
        return y.view(np.float32 if self.output_float else np.int8).copy()

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> HostModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
