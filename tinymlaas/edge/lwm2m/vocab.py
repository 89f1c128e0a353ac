"""The LwM2M words both ends speak: object and resource ids, states, Update Result codes.

One module, so the server, the FOTA/SOTA flows, the HTTP pull orchestrator and
the device objects cannot disagree on what ``/5/0/5`` is or what result 54
means. Ids and codes are OMA LwM2M 1.1 (objects 3, 5 v1.1, 9) and the
project's private TinyML object (``objects/33100.xml``).
"""

from __future__ import annotations

import enum
import json
from typing import Any

Path = tuple[int, ...]


class Obj(enum.IntEnum):
    """Object ids."""

    SECURITY = 0
    SERVER = 1
    DEVICE = 3
    FIRMWARE = 5
    SOFTWARE = 9
    #: The private object (range 32769-42768) describing a TinyML device and its model.
    TINYML = 33100


class Dev(enum.IntEnum):
    """Device object (3) resources."""

    MANUFACTURER = 0
    MODEL = 1
    SERIAL = 2
    FIRMWARE_VERSION = 3
    REBOOT = 4
    MEMORY_FREE = 10  # KiB
    ERROR_CODE = 11
    CURRENT_TIME = 13
    BINDING_MODES = 16
    DEVICE_TYPE = 17
    HARDWARE_VERSION = 18
    SOFTWARE_VERSION = 19
    MEMORY_TOTAL = 21  # KiB


class Fw(enum.IntEnum):
    """Firmware Update object (5) resources."""

    PACKAGE = 0
    PACKAGE_URI = 1
    UPDATE = 2
    STATE = 3
    UPDATE_RESULT = 5
    PKG_NAME = 6
    PKG_VERSION = 7
    PROTOCOL_SUPPORT = 8
    DELIVERY_METHOD = 9
    CANCEL = 10
    SEVERITY = 11
    LAST_STATE_CHANGE = 12
    MAX_DEFER = 13


class Sw(enum.IntEnum):
    """Software Management object (9) resources."""

    PKG_NAME = 0
    PKG_VERSION = 1
    PACKAGE = 2
    PACKAGE_URI = 3
    INSTALL = 4
    UNINSTALL = 6
    UPDATE_STATE = 7
    UPDATE_SUPPORTED_OBJECTS = 8
    UPDATE_RESULT = 9
    ACTIVATE = 10
    DEACTIVATE = 11
    ACTIVATION_STATE = 12
    STATUS_REASON = 16


class Tiny(enum.IntEnum):
    """TinyML Inference object (33100) resources."""

    RAM = 0
    FLASH = 1
    CPU = 2
    CLOCK = 3
    ACCELERATORS = 4
    RUNTIME = 5
    MODEL_SHA256 = 6
    MODEL_NAME = 7
    ARENA = 8
    INPUT = 9
    OUTPUT = 10
    INFERENCE_COUNT = 11
    LATENCY_US = 12
    INSTRUCTIONS = 13
    RUN = 14
    TENSORS = 15
    BOARD = 16
    # 1.1: hybrid inference (tinymlaas.edge.hybrid)
    THRESHOLD = 17
    CLOUD = 18
    LOCAL = 19
    ESCALATED = 20
    FAILED = 21
    LAST_ESCALATED = 22


class FwState(enum.IntEnum):
    """Object 5 State (5/0/3)."""

    idle = 0
    downloading = 1
    downloaded = 2
    updating = 3


class FwResult(enum.IntEnum):
    """Object 5 Update Result (5/0/5)."""

    initial = 0
    success = 1
    not_enough_flash = 2
    out_of_ram = 3
    connection_lost = 4
    integrity_failure = 5
    unsupported_package = 6
    invalid_uri = 7
    update_failed = 8
    unsupported_protocol = 9
    cancelled = 10
    deferred = 11


class SwState(enum.IntEnum):
    """Object 9 Update State (9/x/7)."""

    initial = 0
    download_started = 1
    downloaded = 2
    delivered = 3
    installed = 4


class SwResult(enum.IntEnum):
    """Object 9 Update Result (9/x/9)."""

    initial = 0
    downloading = 1
    installed = 2
    delivered = 3
    not_enough_storage = 50
    out_of_memory = 51
    connection_lost = 52
    integrity_failure = 53
    unsupported_package = 54
    invalid_uri = 56
    device_error = 57
    install_failure = 58
    uninstall_failure = 59


#: How states and results read for people (deployments show these words).
FW_STATE_WORDS: dict[int, str] = {FwState.idle: "idle", FwState.downloading: "downloading",
                  FwState.downloaded: "downloaded", FwState.updating: "updating"}
FW_RESULT_WORDS: dict[int, str] = {
    FwResult.initial: "initial value", FwResult.success: "firmware updated successfully",
    FwResult.not_enough_flash: "not enough flash memory",
    FwResult.out_of_ram: "out of RAM during downloading",
    FwResult.connection_lost: "connection lost during downloading",
    FwResult.integrity_failure: "integrity check failure",
    FwResult.unsupported_package: "unsupported package type", FwResult.invalid_uri: "invalid URI",
    FwResult.update_failed: "firmware update failed",
    FwResult.unsupported_protocol: "unsupported protocol",
    FwResult.cancelled: "firmware update cancelled", FwResult.deferred: "firmware update deferred",
}
SW_STATE_WORDS: dict[int, str] = {SwState.initial: "initial", SwState.download_started: "download started",
                  SwState.downloaded: "downloaded", SwState.delivered: "delivered",
                  SwState.installed: "installed"}
SW_RESULT_WORDS: dict[int, str] = {
    SwResult.initial: "initial value", SwResult.downloading: "downloading",
    SwResult.installed: "software successfully installed",
    SwResult.delivered: "successfully downloaded and package integrity verified",
    SwResult.not_enough_storage: "not enough storage",
    SwResult.out_of_memory: "out of memory during downloading",
    SwResult.connection_lost: "connection lost during downloading",
    SwResult.integrity_failure: "package integrity check failure",
    SwResult.unsupported_package: "unsupported package type", SwResult.invalid_uri: "invalid URI",
    SwResult.device_error: "device defined update error",
    SwResult.install_failure: "software installation failure",
    SwResult.uninstall_failure: "uninstallation failure",
}
#: A failed package download (reported as a firmware result) as a Software Management result.
SW_FROM_DOWNLOAD: dict[FwResult, SwResult] = {
    FwResult.not_enough_flash: SwResult.not_enough_storage,
    FwResult.integrity_failure: SwResult.integrity_failure,
    FwResult.invalid_uri: SwResult.invalid_uri,
    FwResult.unsupported_protocol: SwResult.invalid_uri,
}
#: Software results that mean "this device cannot take a module": fall back to FOTA.
SW_CANNOT = frozenset({SwResult.unsupported_package, SwResult.device_error, SwResult.install_failure})


def fw_result_words(code: int) -> str:
    return FW_RESULT_WORDS.get(code, f"result {code}")


def sw_result_words(code: int) -> str:
    return SW_RESULT_WORDS.get(code, f"result {code}")


def fw_state_words(code: int) -> str:
    return FW_STATE_WORDS.get(code, "?")


def sw_state_words(code: int) -> str:
    return SW_STATE_WORDS.get(code, "?")


#: Device object resources, by the capability they report (memory figures are storage, in KiB).
DEVICE_CAPABILITIES: dict[int, str] = {
    Dev.MANUFACTURER: "manufacturer", Dev.MODEL: "model", Dev.SERIAL: "serial",
    Dev.FIRMWARE_VERSION: "firmware_version", Dev.MEMORY_FREE: "storage_free_kb",
    Dev.DEVICE_TYPE: "device_type", Dev.HARDWARE_VERSION: "hardware_version",
    Dev.SOFTWARE_VERSION: "software_version", Dev.MEMORY_TOTAL: "storage_total_kb",
}
#: TinyML object resources that describe the device and its model, by the capability they
#: report (Accelerators is multi-instance; Tensors is JSON).
TINYML_CAPABILITIES: dict[int, str] = {
    Tiny.RAM: "ram_bytes", Tiny.FLASH: "flash_bytes", Tiny.CPU: "cpu", Tiny.CLOCK: "clock_hz",
    Tiny.ACCELERATORS: "accelerators", Tiny.RUNTIME: "runtime", Tiny.MODEL_SHA256: "model_sha256",
    Tiny.MODEL_NAME: "model_name", Tiny.ARENA: "arena_bytes", Tiny.INFERENCE_COUNT: "inference_count",
    Tiny.LATENCY_US: "latency_us", Tiny.INSTRUCTIONS: "instructions", Tiny.TENSORS: "tensors",
    Tiny.BOARD: "board",
}


def named_capabilities(device: dict[int, Any], tinyml: dict[int, Any]) -> dict[str, Any]:
    """Device and TinyML object values (by resource id) as capability fields."""
    caps = {name: device.get(rid) for rid, name in DEVICE_CAPABILITIES.items()}
    caps.update({name: tinyml.get(rid) for rid, name in TINYML_CAPABILITIES.items()})
    tensors = caps["tensors"]
    caps["tensors"] = json.loads(tensors) if isinstance(tensors, str) and tensors else None
    accel = caps["accelerators"]
    caps["accelerators"] = [accel[k] for k in sorted(accel)] if isinstance(accel, dict) else list(accel or [])
    return caps


def path(obj: int, inst: int, res: int | None = None) -> Path:
    """A resource (or instance) path as the codecs key values: ``(5, 0, 3)``."""
    return (int(obj), inst) if res is None else (int(obj), inst, int(res))


def uri(obj: int, inst: int, res: int | None = None) -> str:
    """The same path as a URI: ``/5/0/3``."""
    return "/" + "/".join(str(p) for p in path(obj, inst, res))
