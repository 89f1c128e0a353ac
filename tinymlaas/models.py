"""Typed records shared by the services, the API and the CLI."""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinymlaas.edge.tensors import ITEMSIZE

MODULE_FORMAT: Literal["tinymlaas.inference-module/1"] = "tinymlaas.inference-module/1"


class TensorSpec(BaseModel):
    """An input or output tensor with its (per-tensor) quantization."""

    name: str
    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 1)
        return n

    @property
    def nbytes(self) -> int:
        """Bytes of one tensor (unknown dtypes count as 4 bytes per element)."""
        return self.size * ITEMSIZE.get(self.dtype, 4)



class ModelInfo(BaseModel):
    """What a .tflite file contains, read from its flatbuffer."""

    sha256: str
    bytes: int
    ops: list[str]
    operators: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    description: str = ""


class MemoryRegion(BaseModel):
    name: str
    origin: int = 0
    length: int = Field(gt=0)
    kind: Literal["flash", "ram", "ccm"] = "ram"


class ImageSpec(BaseModel):
    """A container image the project builds itself from a folder under targets/.

    ``local`` is the same entry point run without Docker, from that folder
    (``{python}`` stands for the service's interpreter).
    """

    image: str
    context: str
    local: list[str] = []


class FirmwareNeeds(BaseModel):
    """What a board's firmware needs besides the inference module (``[firmware]``).

    Compilers and builders add it to the module's own sizes in their fit checks,
    so both refuse the same models.
    """

    model_config = ConfigDict(extra="forbid")

    flash_bytes: int = Field(0, ge=0, description="the firmware's own code and constants")
    static_ram_bytes: int = Field(0, ge=0, description="its statics (drivers, ring buffers)")
    stack_bytes: int = Field(0, ge=0, description="the stack it reserves")
    uart_frames: bool = Field(
        False, description="it also holds one request and one reply frame of the framed UART "
                           "protocol, sized by the model's tensors")


class Board(BaseModel):
    """A target board, read from ``targets/<name>/board.toml``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    arch: str
    cpu: str
    family: str
    module_kind: str
    compilers: list[str] = Field(min_length=1)
    clock_hz: int = Field(0, ge=0)
    fpu: bool = False
    accelerators: list[str] = []
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    regions: list[MemoryRegion] = []
    builder: ImageSpec
    device: ImageSpec | None = None
    #: The emulator backends that can run this board, preferred first; each reads its own
    #: keys of ``emulator`` (named ``<backend>_...``, e.g. ``qemu_machine``).
    emulators: list[str] = []
    emulator: dict[str, Any] = {}
    board_support: dict[str, Any] = {}
    firmware: FirmwareNeeds = FirmwareNeeds()

    @property
    def default_compiler(self) -> str:
        return self.compilers[0]

    @model_validator(mode="after")
    def _emulators_have_settings(self) -> Board:
        """Every backend named in ``emulators`` has settings in ``[emulator]``, and every
        setting belongs to a named backend: a board can neither claim an emulator it gives
        nothing to run with, nor keep settings for one it does not name."""
        if len(set(self.emulators)) != len(self.emulators):
            raise ValueError(f"emulators lists a backend twice: {self.emulators}")
        for name in self.emulators:
            if not any(key.startswith(f"{name}_") for key in self.emulator):
                raise ValueError(f"emulators names '{name}' but [emulator] has no {name}_* key")
        stray = [k for k in self.emulator if not k.startswith(tuple(f"{n}_" for n in self.emulators))]
        if stray:
            raise ValueError(f"[emulator] keys {stray} belong to no backend in emulators "
                             f"{self.emulators}")
        return self


class CompilerInfo(BaseModel):
    name: str
    version: str
    options: dict[str, Any] = {}


class ModuleMemory(BaseModel):
    weights_bytes: int = 0
    arena_bytes: int = 0
    code_bytes: int | None = None
    #: Bytes of the model-data section (weights and every other per-model number)
    #: of modules that keep it apart from the code; a model-only update replaces it.
    data_bytes: int | None = None


class ModuleManifest(BaseModel):
    """The standard inference-module format: what any builder or device reads."""

    format: Literal["tinymlaas.inference-module/1"] = MODULE_FORMAT
    name: str
    kind: str
    target: str
    model_sha256: str
    model_file: str = "model.tflite"
    ops: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    compiler: CompilerInfo
    memory: ModuleMemory
    files: dict[str, str] = {}
    #: Hash of what the generated code depends on (ops, shapes, options, memory
    #: plan), not of the model data: equal values mean a model-only update fits.
    graph_sha256: str | None = None
    #: Hash of the model-data section as the target stores it.
    data_sha256: str | None = None


FIRMWARE_FORMAT: Literal["tinymlaas.firmware/1"] = "tinymlaas.firmware/1"


class FirmwareManifest(BaseModel):
    """What a builder writes next to the OS image it built."""

    model_config = ConfigDict(extra="allow")

    format: Literal["tinymlaas.firmware/1"] = FIRMWARE_FORMAT
    board: str
    version: str
    model_sha256: str
    image: str
    image_sha256: str
    files: dict[str, str]
    sizes: dict[str, int]
    headroom: dict[str, int]
    builder: str = ""


# -- what the store keeps ---------------------------------------------------------------


class Model(BaseModel):
    """A registered model version: the .tflite is the artifact ``sha256``."""

    id: str
    name: str
    version: int
    sha256: str
    bytes: int
    source: str = Field(description="where it came from: upload:FILE, zoo:RECIPE:seed=N, ...")
    info: ModelInfo
    created_at: datetime


class StoredModule(ModuleManifest):
    """A build's inference module: its manifest, and each of its files as an artifact."""

    artifacts: dict[str, str] = Field({}, description="file name -> SHA-256 in the artifact store")
    package_sha256: str | None = Field(None, description="the module as devices get it (SOTA): "
                                                         "packed and signed by the service")


class StoredFirmware(FirmwareManifest):
    """A build's OS image: the builder's manifest, and each of its files as an artifact."""

    artifacts: dict[str, str] = Field({}, description="file name -> SHA-256 in the artifact store")
    package_sha256: str | None = Field(None, description="the OS image as devices get it (FOTA): "
                                                         "signed by the service")

    @property
    def image_artifact(self) -> str:
        return self.artifacts[self.image]


class Build(BaseModel):
    """One model compiled and built for one board; ``module``/``firmware`` once it finished."""

    id: str
    job_id: str
    model_id: str
    target: str
    compiler: str | None = None
    options: dict[str, Any] = {}
    builder: str
    version: str
    module: StoredModule | None = None
    firmware: StoredFirmware | None = None
    created_at: datetime


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Job(BaseModel):
    id: str
    kind: str
    state: JobState
    progress: float = 0.0
    step: str = ""
    error: str | None = None
    result: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


# -- devices and their updates (the orchestrator's records) -------------------------


class Package(BaseModel):
    """An artifact a device pulls: a whole OS image (FOTA) or an inference module (SOTA)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    kind: Literal["firmware", "module"]
    name: str = ""
    version: str = ""
    #: The model the package makes the device run (checked after a SOTA).
    model_sha256: str | None = None


class Device(BaseModel):
    """A device the orchestrator knows, online (registered) or not."""

    endpoint: str
    online: bool
    lifetime: int | None = None
    lwm2m: str | None = None
    binding: str | None = None
    address: str | None = None
    registered_at: float | None = None
    updated_at: float | None = None
    objects: dict[int, list[int]] = {}
    versions: dict[int, str] = {}
    secure: bool = False
    #: LwM2M queue mode: the device sleeps between its messages; requests wait for it to wake.
    queue_mode: bool = False
    #: Requests waiting for the device to wake (queue mode).
    queued: int = 0
    offline_since: float | None = None
    offline_reason: str = ""


class HybridState(BaseModel):
    """A device's hybrid inference as it reports it: its escalation policy (none: every inference is
    answered on the device) and what it counted since it booted."""

    threshold: float | None = None
    cloud: str | None = Field(None, description="the cloud endpoint it escalates to")
    local: int = Field(0, description="inferences the device answered itself")
    escalated: int = Field(0, description="inferences the cloud answered")
    failed: int = Field(0, description="escalations without an answer (the local one stood, counted local)")


class Escalation(BaseModel):
    """The cloud model's answer to one inference a device escalated."""

    values: list[float] = Field(description="the cloud model's output (class probabilities)")
    label: int = Field(description="the class it predicts")
    model_sha256: str = Field(description="the model the cloud ran")
    compute_us: int = Field(description="its interpreter time on the service")


class DeviceCapabilities(BaseModel):
    """What a device says it is (LwM2M Device object 3 + TinyML object 33100).

    ``storage_*_kb`` are the Device object's Memory Free/Total: storage, not RAM.
    """

    endpoint: str
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware_version: str | None = None
    hardware_version: str | None = None
    software_version: str | None = None
    device_type: str | None = None
    storage_free_kb: int | None = None
    storage_total_kb: int | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    cpu: str | None = None
    clock_hz: int | None = None
    accelerators: list[str] = []
    runtime: str | None = None
    board: str | None = None
    model_sha256: str | None = None
    model_name: str | None = None
    arena_bytes: int | None = None
    inference_count: int | None = None
    latency_us: int | None = None
    instructions: int | None = None
    tensors: dict[str, Any] | None = None
    sota: bool = False
    fota: bool = False
    hybrid: HybridState | None = None


class DeviceDetail(BaseModel):
    """A device's record and, when it is online, what it reports about itself now."""

    device: Device
    capabilities: DeviceCapabilities | None = None
    capabilities_error: str | None = Field(None, description="why the capabilities could not be read")


class JoinInfo(BaseModel):
    """How devices join this service: the orchestrator plugin, where, and its security."""

    plugin: str
    security: str
    uri: str | None = Field(None, description="LwM2M: the server's coap:// URI")
    content_format: str | None = Field(None, description="LwM2M: the preferred content format")
    poll: str | None = Field(None, description="HTTP pull: the poll path ({endpoint}: the device's name)")
    poll_wait_s: float | None = Field(None, description="HTTP pull: how long a poll is held open")


class DeviceCredentials(BaseModel):
    """A device's secret, shown once: OSCORE material (LwM2M) or a bearer token (HTTP pull).

    The fields beyond ``endpoint`` are the orchestrator's own."""

    model_config = ConfigDict(extra="allow")

    endpoint: str
    signing_key: str | None = Field(None, description="the service's public key (base64): the device "
                                                      "installs only updates signed with it")

    def write_trust(self, folder: Path) -> None:
        """Keep the signing key where the device agents look for it (``--trust``)."""
        if self.signing_key:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / TRUST_FILE).write_text(self.signing_key + "\n")

    def secret(self, key: str) -> str:
        value = (self.model_extra or {}).get(key)
        if not isinstance(value, str):
            raise KeyError(f"these credentials have no '{key}'")
        return value


#: The file in a device's credentials folder that holds the service's public signing key.
TRUST_FILE = "trust.pub"


class DeviceAttach(BaseModel):
    """How a device started next to the service (dry-run, tests, demos) joins it: the device
    agents' command-line flags, with its credentials in a folder it can read (and, in
    ``trust.pub``, the key its updates must be signed with)."""

    endpoint: str
    credentials: Path | None = None

    def args(self, credentials_dir: str | None = None) -> list[str]:
        """The device agents' flags (``credentials_dir``: where the device sees the folder)."""
        raise NotImplementedError

    def trust_args(self, credentials_dir: str | None) -> list[str]:
        if self.credentials is None or not (self.credentials / TRUST_FILE).is_file():
            return []
        return ["--trust", f"{credentials_dir or self.credentials}/{TRUST_FILE}"]

    @property
    def how(self) -> str:
        """How the device joins, in words."""
        raise NotImplementedError


class LwM2MAttach(DeviceAttach):
    """Joins an LwM2M server: its URI, the endpoint name, and its credentials: an OSCORE
    context folder, or a folder holding a DTLS pre-shared key, ``psk.json`` (``security="psk"``)."""

    uri: str
    lifetime_s: int = Field(60, gt=0)
    security: Literal["oscore", "psk"] = "oscore"

    def args(self, credentials_dir: str | None = None) -> list[str]:
        args = ["--lwm2m", self.uri, "--endpoint", self.endpoint, "--lifetime", str(self.lifetime_s)]
        if self.credentials is not None and self.security == "psk":
            args += ["--psk", f"{credentials_dir or self.credentials}/psk.json"]
        elif self.credentials is not None:
            args += ["--oscore", credentials_dir or str(self.credentials)]
        return args + self.trust_args(credentials_dir)

    @property
    def how(self) -> str:
        if self.credentials is None:
            return "registered over CoAP"
        return "registered over DTLS (PSK)" if self.security == "psk" else "registered over OSCORE"


class PullAttach(DeviceAttach):
    """Polls a service whose orchestrator is ``http-pull``: the API's URL, the endpoint name,
    a folder holding its bearer ``token``."""

    url: str
    wait_s: float = Field(20.0, gt=0)

    def args(self, credentials_dir: str | None = None) -> list[str]:
        args = ["--ota", self.url, "--endpoint", self.endpoint, "--ota-wait", str(self.wait_s)]
        if self.credentials is not None:
            args += ["--token-file", f"{credentials_dir or self.credentials}/token"]
        return args + self.trust_args(credentials_dir)

    @property
    def how(self) -> str:
        return "polling with its token" if self.credentials is not None else "polling"


class UpdateOutcome(BaseModel):
    """How one firmware (FOTA) or model (SOTA) update of one device ended; ``result`` uses
    the LwM2M object's own words."""

    endpoint: str
    kind: Literal["firmware", "model"]
    package_sha256: str
    succeeded: bool | None = None
    result_code: int | None = None
    result: str = ""
    detail: str = ""
    states: list[str] = []
    #: How the package reached the device ("pull over HTTP", "pull over CoAP", "push ...").
    delivery: str = ""
    firmware_before: str | None = None
    firmware_after: str | None = None
    model_sha256: str | None = None
    fell_back_to_firmware: bool = False
    attempts: int = 0
    seconds: float = 0.0
    #: Set when the record was corrected from what the device later reported it runs.
    reconciled: bool = False


class Deployment(UpdateOutcome):
    """One update as the service records it: the outcome, once the job has one."""

    id: str
    job_id: str | None = None
    build_id: str | None = None
    created_at: datetime


class QueuedRequest(BaseModel):
    """A request to a device that sleeps (LwM2M queue mode): it is sent when the device next
    wakes; the job shows "queued" until then, and the result afterwards."""

    state: Literal["queued"] = "queued"
    endpoint: str
    job: Job
    detail: str = ""


class TensorInput(BaseModel):
    """One input tensor of an inference request: raw values of its dtype, or real values to
    quantize with its scale; ``name`` (optional) says which input it is."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="the input tensor's name, as the device reports it")
    input: list[float] | None = Field(None, description="raw tensor values (int8 codes, or floats)")
    values: list[float] | None = Field(None, description="real values, quantized with the tensor's scale")

    @model_validator(mode="after")
    def one_of(self) -> TensorInput:
        if (self.input is None) == (self.values is None):
            raise ValueError("give either 'input' (raw tensor values) or 'values' (floats to quantize)")
        return self


class TensorData(BaseModel):
    """One tensor of an inference: its raw values, and its real values when it is quantized or
    float."""

    name: str
    raw: list[int | float]
    values: list[float] | None = None


class InferenceReport(BaseModel):
    """One inference a device ran, as its TinyML object reports it (raw tensors as bytes)."""

    endpoint: str
    count: int
    #: Raw tensors, as values of their dtype (int8 codes, or floats for float models): the first
    #: input and output (a model with one of each has no other); ``values``: the first output's.
    input: list[int | float]
    output: list[int | float]
    values: list[float] | None = None
    inputs: list[TensorData] = Field(default_factory=list, description="every input tensor")
    outputs: list[TensorData] = Field(default_factory=list, description="every output tensor")
    latency_us: int | None = None
    instructions: int | None = None
    model_sha256: str | None = None
    escalated: bool | None = Field(None, description="answered by the cloud model (a hybrid device's "
                                                     "uncertain inference); None: not a hybrid device")
