"""The model zoo: seeded TensorFlow recipes that train and int8-quantize models.

Nothing is downloaded: recipes train on data they generate or that a package
ships. A trained model is cached by (recipe source, seed, TensorFlow version).
"""

from __future__ import annotations

import hashlib
import inspect as pyinspect
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import ClassVar

import numpy as np

from tinymlaas.errors import NotFound, PluginError


class Recipe(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    default_seed: ClassVar[int] = 1

    @abstractmethod
    def build(self, seed: int) -> bytes:
        """Train, convert and quantize; return the .tflite bytes."""

    @abstractmethod
    def sample_inputs(self) -> np.ndarray:
        """Float inputs, one row per sample, that demos and tests run."""

    def cache_key(self, seed: int) -> str:
        """Changes with the recipe's module, the shared conversion code and TensorFlow."""
        from tinymlaas.zoo import _convert

        src = pyinspect.getsource(sys.modules[type(self).__module__]) + pyinspect.getsource(_convert)
        tf = version("tensorflow-cpu")
        return hashlib.sha256(f"{src}|{seed}|{tf}".encode()).hexdigest()[:16]

    def load(self, cache_dir: Path, seed: int | None = None) -> bytes:
        """The model bytes, trained once per cache key."""
        seed = self.default_seed if seed is None else seed
        path = cache_dir / f"{self.name}-{seed}-{self.cache_key(seed)}.tflite"
        if path.exists():
            return path.read_bytes()
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _output_to(path.with_suffix(".log")):
            data = self.build(seed)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return data


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send TensorFlow's chatter (Python and C++ alike) to a log file, not the user."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("wb") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@cache
def recipes() -> dict[str, type[Recipe]]:
    found: dict[str, type[Recipe]] = {}
    for ep in entry_points(group="tinymlaas.zoo"):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Recipe)) or cls.name != ep.name:
            raise PluginError(f"zoo entry '{ep.name}' is not a Recipe named '{ep.name}'")
        found[ep.name] = cls
    return found


def get_recipe(name: str) -> Recipe:
    available = recipes()
    if name not in available:
        raise NotFound(f"no zoo model '{name}'; available: {', '.join(sorted(available))}")
    return available[name]()
