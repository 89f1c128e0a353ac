"""Lowerings of the ops and dtypes beyond the int8 core (16x8 quantization, more ops)."""

from __future__ import annotations
