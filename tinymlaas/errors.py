"""The service's error family: the classes of :mod:`tinymlaas.edge.errors`.

Devices and the service raise the same errors (a UART or LwM2M client is
used on both sides), and device code may import nothing from the service,
so the family lives in the edge package and is re-exported here.
"""

from __future__ import annotations

from tinymlaas.edge.errors import (
    BuildFailed,
    Conflict,
    DeviceError,
    DeviceUnreachable,
    DoesNotFit,
    EmulatorError,
    FirmwareCrashed,
    Forbidden,
    InvalidInput,
    NotFound,
    PluginError,
    TinyMLaaSError,
    TooLarge,
    Unauthenticated,
    UnsupportedModel,
    by_code,
)

__all__ = [
    "BuildFailed",
    "Conflict",
    "DeviceError",
    "DeviceUnreachable",
    "DoesNotFit",
    "EmulatorError",
    "FirmwareCrashed",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PluginError",
    "TinyMLaaSError",
    "TooLarge",
    "Unauthenticated",
    "UnsupportedModel",
    "by_code",
]
