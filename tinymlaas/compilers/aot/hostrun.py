"""Running generated modules on the host: build a shared library with gcc, call it.

Tests and benchmarks compare these results with TFLM byte for byte; the same
C source is what the Cortex-M firmware compiles.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from functools import cache
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


_NP_DTYPES: dict[str, type[np.generic]] = {
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32}


@cache
def _compiler_identity(gcc: str) -> str:
    """Which gcc this is: a different compiler must build again."""
    proc = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False, timeout=60)
    return f"{Path(gcc).resolve()}|{proc.stdout}"


def _build_key(module_dir: Path, gcc: str, cflags: tuple[str, ...]) -> str:
    """Every input of the host build: the module's files, the flags and the compiler."""
    h = hashlib.sha256(_compiler_identity(gcc).encode())
    h.update("\0".join(cflags).encode())
    for path in sorted(p for p in module_dir.rglob("*") if p.is_file()):
        h.update(f"\0{path.relative_to(module_dir)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:32]


class HostModule:
    """A generated module built as a host shared library; ``invoke`` takes raw tensors.

    ``cache``: a folder of libraries built before, by the hash of every input of the build
    (module files, flags, compiler), so reruns on the same generated code skip gcc; a build
    that fails is never kept. Each module loads its own copy (a model's static state is per
    library file)."""

    def __init__(self, module_dir: Path, name: str = "model",
                 cflags: tuple[str, ...] = HOST_CFLAGS, cache: Path | None = None) -> None:
        self.name = name
        macros = header_macros(module_dir / f"{name}.h")
        p = name.upper()
        self.input_bytes = int(macros[f"{p}_INPUT_BYTES"])
        self.output_bytes = int(macros[f"{p}_OUTPUT_BYTES"])
        self.arena_bytes = int(macros[f"{p}_ARENA_BYTES"])

        def dtypes(kind: str) -> list[type[np.generic]]:
            n = int(macros[f"{p}_{kind}S"])
            return [_NP_DTYPES[macros[f"{p}_{kind}{k}_DTYPE"].strip('"')] for k in range(n)]
        self.input_dtypes, self.output_dtypes = dtypes("INPUT"), dtypes("OUTPUT")
        self.output_sizes = [int(macros[f"{p}_OUTPUT{k}_ELEMENTS"])
                             for k in range(len(self.output_dtypes))]
        self.input_float = self.input_dtypes[0] is np.float32
        self.output_float = self.output_dtypes[0] is np.float32
        self._tmp = tempfile.TemporaryDirectory(prefix="aot-host-")
        lib = Path(self._tmp.name) / f"lib{name}.so"
        gcc = shutil.which("gcc") or "gcc"
        kept = cache / f"lib{name}-{_build_key(module_dir, gcc, cflags)}.so" if cache else None
        if kept is not None and kept.is_file():
            shutil.copyfile(kept, lib)
        else:
            _run([gcc, *cflags, "-I", str(module_dir), str(module_dir / f"{name}.c"), "-o", str(lib)])
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                part = kept.with_suffix(f".{Path(self._tmp.name).name}.part")
                shutil.copyfile(lib, part)
                part.replace(kept)
        self._lib = ctypes.CDLL(str(lib))
        self._fn = getattr(self._lib, f"{name}_invoke")
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._fn.restype = ctypes.c_int
        self._multi = None
        if len(self.input_dtypes) > 1 or len(self.output_dtypes) > 1:
            self._multi = getattr(self._lib, f"{name}_invoke_tensors")
            self._multi.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            self._multi.restype = ctypes.c_int

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """One inference of a one-input, one-output model on raw values."""
        return self.invoke_all([tensor])[0]

    def invoke_all(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        """One inference on every input tensor (raw values, the model's order)."""
        if len(tensors) != len(self.input_dtypes):
            raise ValueError(f"the module takes {len(self.input_dtypes)} inputs, "
                             f"not {len(tensors)}")
        xs = [np.ascontiguousarray(np.asarray(t, dtype=d).ravel())
              for t, d in zip(tensors, self.input_dtypes, strict=True)]
        ys = [np.zeros(n, dtype=d) for n, d in zip(self.output_sizes, self.output_dtypes,
                                                    strict=True)]
        if self._multi is None:
            if xs[0].nbytes != self.input_bytes:
                raise ValueError(f"input has {xs[0].nbytes} bytes, the module takes "
                                 f"{self.input_bytes}")
            rc = self._fn(xs[0].ctypes.data, ys[0].ctypes.data)
        else:
            ins = (ctypes.c_void_p * len(xs))(*(x.ctypes.data for x in xs))
            outs = (ctypes.c_void_p * len(ys))(*(y.ctypes.data for y in ys))
            rc = self._multi(ins, outs)
        if rc != 0:
            raise RuntimeError(f"{self.name}_invoke returned {rc}")
        return ys

    def reset(self) -> None:
        """Back to the state a stateful model starts from (``NAME_reset``)."""
        getattr(self._lib, f"{self.name}_reset")()

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> HostModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
