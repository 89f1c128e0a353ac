"""The plugin contracts: one small abstract base per role.

Every plugin has a unique ``name``, a ``version`` and a pydantic ``Options``
model; the API schema and the CLI flags are both generated from ``Options``.
Plugins are registered under the entry-point groups ``tinymlaas.compilers``,
``tinymlaas.builders``, ``tinymlaas.emulators`` and ``tinymlaas.orchestrators``
(built-ins too), see :mod:`tinymlaas.plugins.registry`.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tinymlaas.errors import Conflict, UnsupportedModel
from tinymlaas.models import (
    Board,
    Device,
    DeviceAttach,
    DeviceCapabilities,
    DeviceCredentials,
    Escalation,
    FirmwareManifest,
    HybridState,
    InferenceReport,
    JoinInfo,
    ModelInfo,
    ModuleManifest,
    Package,
    UpdateOutcome,
)

if TYPE_CHECKING:
    from fastapi import APIRouter

#: Reports a step name and the fraction of the whole job done (0..1).
Progress = Callable[[str, float], None]
#: Answers an inference a device escalated: (device endpoint, raw input tensor) -> the cloud's answer.
EscalationHandler = Callable[[str, bytes], Awaitable[Escalation]]


def no_progress(step: str, fraction: float) -> None:
    """Default progress sink for callers that do not show progress."""


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PluginInfo(BaseModel):
    """What the API and the CLI show about a plugin, its options' JSON schema included."""

    name: str
    version: str
    doc: str
    options: dict[str, Any]


class CompilerInfoCard(PluginInfo):
    """A compiler plugin: what it writes, for which architectures, from which ops and dtypes."""

    output_kind: str
    ops: list[str]
    dtypes: list[str]
    arches: list[str]


class Plugin(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "0.1.0"
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def describe(cls) -> PluginInfo:
        """What the API and the CLI show about a plugin, options schema included."""
        return PluginInfo(name=cls.name, version=cls.version, doc=_first_line(cls.__doc__),
                          options=cls.Options.model_json_schema())


class Compiler(Plugin):
    """Turns (model, board, options) into an inference module in a directory."""

    #: The module kind written (a board's ``module_kind`` must match).
    output_kind: ClassVar[str]
    supported_ops: ClassVar[frozenset[str]]
    supported_dtypes: ClassVar[frozenset[str]]
    #: Board architectures whose builders can take this compiler's output.
    target_arches: ClassVar[frozenset[str]]

    @classmethod
    def describe(cls) -> CompilerInfoCard:
        return CompilerInfoCard(**super().describe().model_dump(), output_kind=cls.output_kind,
                                ops=sorted(cls.supported_ops), dtypes=sorted(cls.supported_dtypes),
                                arches=sorted(cls.target_arches))

    def check(self, model: ModelInfo, board: Board) -> None:
        """Refuse, before any work, what this compiler cannot handle."""
        if board.arch not in self.target_arches:
            raise UnsupportedModel(
                f"compiler '{self.name}' does not generate code for {board.arch} "
                f"(board '{board.name}'); it supports {', '.join(sorted(self.target_arches))}"
            )
        missing = [op for op in model.ops if op not in self.supported_ops]
        if missing:
            raise UnsupportedModel(
                f"compiler '{self.name}' does not support op(s) {', '.join(missing)}; "
                f"supported: {', '.join(sorted(self.supported_ops))}",
                unsupported_ops=missing,
            )
        for t in [*model.inputs, *model.outputs]:
            if t.dtype not in self.supported_dtypes:
                raise UnsupportedModel(
                    f"compiler '{self.name}' does not support dtype {t.dtype} of tensor "
                    f"'{t.name}'; supported: {', '.join(sorted(self.supported_dtypes))}"
                )

    @abstractmethod
    def compile(
        self,
        model: bytes,
        info: ModelInfo,
        board: Board,
        out_dir: Path,
        *,
        name: str = "model",
        progress: Progress = no_progress,
    ) -> ModuleManifest:
        """Write the module's files and ``manifest.json`` into ``out_dir``."""


class Builder(Plugin):
    """Turns an inference module into a device OS image for one board."""

    @abstractmethod
    def build(
        self,
        module_dir: Path,
        board: Board,
        out_dir: Path,
        *,
        version: str = "1.0.0",
        progress: Progress = no_progress,
    ) -> FirmwareManifest:
        """Build into ``out_dir`` (replaced only on success) and describe the result."""


class EmulatorSession(ABC):
    """A running emulated board: its UART as a byte stream, and a stop.

    Reads raise :class:`~tinymlaas.errors.FirmwareCrashed` (with the last UART
    output) when the emulated board stops, and EmulatorError on a timeout; a
    session never blocks past the timeout it is given.
    """

    board: Board

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        """Bytes up to and including ``terminator``."""

    def read_line(self, timeout: float) -> str:
        return self.read_until(b"\n", timeout).decode(errors="replace").rstrip("\r\n")

    @property
    @abstractmethod
    def running(self) -> bool: ...

    @abstractmethod
    def stop(self) -> None:
        """End the emulation; idempotent."""

    def __enter__(self) -> EmulatorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Emulator(Plugin):
    """Runs a board's firmware image without the board."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this emulator cannot run on this machine (its ``binary`` option is not on PATH), or None."""
        binary = getattr(cls.Options(), "binary", None)
        return f"{binary} is not on PATH" if binary and shutil.which(binary) is None else None

    @abstractmethod
    def supports(self, board: Board) -> bool: ...

    @abstractmethod
    def start(self, firmware: Path, board: Board) -> EmulatorSession:
        """Boot ``firmware`` (an ELF) with the board's UART connected; returns once it runs."""


class Orchestrator(Plugin):
    """Talks to deployed devices: how they join, their credentials, inventory, capabilities,
    FOTA, SOTA and results.

    Runs on the API's event loop (``start``/``stop`` in its lifespan). Devices
    pull packages from the API at ``{download_base}/devices/{endpoint}/packages/{sha256}``;
    the API asks :meth:`authorize_download` before serving one.
    """

    @classmethod
    def routes(cls) -> list[APIRouter]:
        """HTTP routes the devices call on the API (a protocol over HTTP); none by default."""
        return []

    @abstractmethod
    async def start(self, data_dir: Path) -> None:
        """Start serving devices; ``data_dir`` is for the plugin's own state (e.g. credentials)."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def join_info(self) -> JoinInfo:
        """How devices join: where they connect and with which security."""

    @classmethod
    @abstractmethod
    def attach(cls, join: JoinInfo, *, api_url: str, endpoint: str, credentials: DeviceCredentials | None,
               folder: Path) -> DeviceAttach:
        """How a device started next to the service joins it: its credentials written into
        ``folder`` the way the device agents read them, and the agents' flags."""

    @abstractmethod
    def provision(self, endpoint: str, *, replace: bool = False) -> DeviceCredentials:
        """New credentials for a device (shown once); Conflict if it has some and not ``replace``,
        or if this service runs without device security."""

    @abstractmethod
    def revoke(self, endpoint: str) -> None:
        """Drop a device's credentials; it is disconnected and cannot join again."""

    @abstractmethod
    def devices(self) -> list[Device]: ...

    @abstractmethod
    def device(self, endpoint: str) -> Device:
        """NotFound for a device never seen."""

    @abstractmethod
    async def capabilities(self, endpoint: str) -> DeviceCapabilities:
        """Read what the device is and runs (DeviceUnreachable when it is offline)."""

    @abstractmethod
    async def deploy_firmware(self, endpoint: str, package: Package, *, download_base: str,
                              progress: Progress = no_progress) -> UpdateOutcome:
        """FOTA: the device replaces its whole OS image (and may reboot). Returns the outcome."""

    @abstractmethod
    async def deploy_model(self, endpoint: str, module: Package, *, download_base: str,
                           fallback_firmware: Package | None = None,
                           progress: Progress = no_progress) -> UpdateOutcome:
        """SOTA: the device swaps only its inference module without stopping; a device
        that cannot gets ``fallback_firmware`` by FOTA when one is given."""

    @abstractmethod
    async def infer(self, endpoint: str, tensor: bytes) -> InferenceReport:
        """Run one inference on the device through the orchestration channel."""

    @abstractmethod
    async def subscribe(self, endpoint: str) -> AsyncIterator[InferenceReport]:
        """The device's inferences as they happen (however they were triggered). Whatever can
        fail (unknown or offline device, no TinyML object) fails here, before the first one."""

    @abstractmethod
    def authorize_download(self, endpoint: str, sha256: str, grant: str | None, *, address: str | None,
                           token: str | None) -> None:
        """Raise Forbidden unless this device, calling from ``address`` (with its ``token`` where
        devices have one), was sent this package with this grant and is being updated now."""

    #: Who answers the inferences devices escalate (the service's cloud models); the API's lifespan
    #: sets it. An orchestrator that carries escalations passes each one, its device authenticated.
    escalation: EscalationHandler | None = None

    async def set_hybrid(self, endpoint: str, threshold: float | None, cloud: str | None) -> HybridState:
        """Give a device its hybrid policy: escalate inferences whose top class's probability is below
        ``threshold`` to cloud endpoint ``cloud`` (``None``: answer everything on the device). Returns
        what the device reports then."""
        raise Conflict(f"the {self.name} orchestrator carries no hybrid inference")
