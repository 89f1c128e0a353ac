"""One error family for the whole service.

    TinyMLaaSError
    ├── InvalidInput (422, exit 2)
    │   ├── UnsupportedModel   model uses an op/dtype/shape a compiler cannot handle
    │   ├── DoesNotFit         model does not fit the board's flash or RAM
    │   └── TooLarge (413)     a request body or file over its limit
    ├── NotFound (404, exit 3)
    ├── Conflict (409, exit 4)
    ├── Unauthenticated (401, exit 11)   no or unknown credentials for the management API
    ├── Forbidden (403, exit 10)         credentials that do not allow it, or no grant
    ├── PluginError (500, exit 5)
    ├── BuildFailed (500, exit 6)
    ├── EmulatorError (500, exit 7)
    │   └── FirmwareCrashed    the emulated firmware faulted or stopped
    ├── DeviceUnreachable (504, exit 8)   no answer (CoAP retransmissions/timeouts)
    └── DeviceError (502, exit 9)         the device answered, with an error code

Each class carries its HTTP status, CLI exit code and a stable machine code, so
the API has one handler and the CLI one `except` for the whole family.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TinyMLaaSError(Exception):
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_problem(self) -> dict[str, Any]:
        """RFC 9457 problem details body."""
        body: dict[str, Any] = {
            "type": f"urn:tinymlaas:error:{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "detail": self.message,
        }
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(TinyMLaaSError):
    status = 422
    exit_code = 2
    code = "invalid_input"


class UnsupportedModel(InvalidInput):
    code = "unsupported_model"


class DoesNotFit(InvalidInput):
    code = "does_not_fit"


class TooLarge(InvalidInput):
    status = 413
    code = "too_large"


class NotFound(TinyMLaaSError):
    status = 404
    exit_code = 3
    code = "not_found"


class Conflict(TinyMLaaSError):
    status = 409
    exit_code = 4
    code = "conflict"


class Unauthenticated(TinyMLaaSError):
    """The management API does not know who is calling (no token, or an unknown one)."""

    status = 401
    exit_code = 11
    code = "unauthenticated"


class Forbidden(TinyMLaaSError):
    """No (valid) credentials or download grant for what was asked."""

    status = 403
    exit_code = 10
    code = "forbidden"


class PluginError(TinyMLaaSError):
    exit_code = 5
    code = "plugin_error"


class BuildFailed(TinyMLaaSError):
    exit_code = 6
    code = "build_failed"


class EmulatorError(TinyMLaaSError):
    exit_code = 7
    code = "emulator_error"


class FirmwareCrashed(EmulatorError):
    code = "firmware_crashed"


class DeviceUnreachable(TinyMLaaSError):
    status = 504
    exit_code = 8
    code = "device_unreachable"


class DeviceError(TinyMLaaSError):
    """A device answered, but with an error (a CoAP 4.xx/5.xx, or a failed update)."""

    status = 502
    exit_code = 9
    code = "device_error"


def by_code() -> dict[str, type[TinyMLaaSError]]:
    """Every class of the family by its machine code: what turns a problem answer (an API's,
    a builder's) back into the error it names."""
    found: dict[str, type[TinyMLaaSError]] = {}
    todo: list[type[TinyMLaaSError]] = [TinyMLaaSError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found
