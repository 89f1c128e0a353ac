"""The zoo's hello_world is deterministic, cached, and a good sine."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm
from tinymlaas.errors import NotFound
from tinymlaas.zoo import get_recipe, recipes


def test_recipes_are_registered() -> None:
    assert {"hello_world", "hello_world_float"} <= set(recipes())
    with pytest.raises(NotFound, match="available"):
        get_recipe("nope")


def test_cache_is_keyed_and_reused(hello_world: bytes, settings: Settings, tmp_path: Path) -> None:
    recipe = get_recipe("hello_world")
    cached = settings.zoo_dir / f"hello_world-1-{recipe.cache_key(1)}.tflite"
    assert cached.read_bytes() == hello_world
    assert recipe.cache_key(1) != recipe.cache_key(2)


def test_int8_model_tracks_sine(hello_world: bytes) -> None:
    tflm = Tflm(hello_world)
    xs = np.linspace(0, 2 * math.pi, 50)
    ys = np.array([tflm.invoke_float(np.array([[x]]))[0, 0] for x in xs])
    assert np.max(np.abs(ys - np.sin(xs))) < 0.2
