"""TinyML as-a-Service: compile, build, deploy and run ML models on microcontrollers.

Kept import-light on purpose: parts of this package (``tflm``, ``device``)
run on devices that have only numpy and the TFLM wheel.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
