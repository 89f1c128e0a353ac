"""Settings, read once at the edges (CLI, API app factory) and passed down.

Environment variables use the prefix ``TINYMLAAS_`` and ``__`` for nesting,
e.g. ``TINYMLAAS_LWM2M__PORT=5700``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class BuildSettings(BaseModel):
    executor: Literal["docker", "local"] = "docker"
    timeout_s: float = Field(900.0, gt=0)
    concurrency: int = Field(1, ge=1, le=16)


class EmulatorSettings(BaseModel):
    """Which emulator runs MCU firmware, and how long a booted board may take to say READY."""

    #: The emulator plugin to use (``qemu``, ``renode``); None: the first of the board's
    #: ``emulators`` that is installed.
    backend: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]*$")
    #: From the emulator running to the firmware's ready banner (the emulator's own
    #: start-up, e.g. Renode's Mono, is bounded by its plugin's options).
    boot_timeout_s: float = Field(10.0, gt=0)


class LwM2MSettings(BaseModel):
    """The LwM2M server (UDP, loopback by default) and how it updates devices."""

    host: str = "127.0.0.1"
    port: int = Field(5683, ge=0, le=65535)
    #: "oscore": devices must register (and are managed) over OSCORE with
    #: credentials provisioned per device; "psk": over DTLS 1.2 with a pre-shared key
    #: per device, on ``coaps_port``; "off": plain CoAP.
    security: Literal["off", "oscore", "psk"] = "off"
    #: UDP port of the DTLS (coaps://) server when security is "psk" (0: any free one).
    coaps_port: int = Field(5684, ge=0, le=65535)
    #: Base URL devices download packages from (the API); default: the API's address.
    package_base_url: str | None = None
    #: Preferred content format for reads and writes (LwM2M 1.0 clients get TLV).
    content_format: Literal["senml-cbor", "senml-json", "tlv"] = "senml-cbor"
    #: Block size for block-wise transfers until a device shows a smaller one.
    block_size: Literal[16, 32, 64, 128, 256, 512, 1024] = 1024
    #: CoAP confirmable-message retransmission (RFC 7252 ACK_TIMEOUT, MAX_RETRANSMIT).
    ack_timeout_s: float = Field(2.0, gt=0)
    max_retransmit: int = Field(4, ge=0, le=10)
    #: Upper bound for one request, retransmissions and block-wise transfer included.
    request_timeout_s: float = Field(30.0, gt=0)
    download_timeout_s: float = Field(300.0, gt=0)
    update_timeout_s: float = Field(120.0, gt=0)
    #: Extra download attempts after "connection lost" or an unreachable device.
    retries: int = Field(2, ge=0, le=10)
    #: How long a package download grant stays valid.
    grant_ttl_s: float = Field(3600.0, gt=0)
    #: Queue mode (binding UQ): how long a device stays awake after it sent something
    #: (LwM2M's default is MAX_TRANSMIT_WAIT, 93 s), and how long a request waits for a
    #: sleeping device to wake before it fails.
    queue_awake_s: float = Field(93.0, gt=0)
    queue_timeout_s: float = Field(900.0, gt=0)


class HttpPullSettings(BaseModel):
    """The plain-HTTP pull orchestrator ("custom OTA"): devices long-poll the API."""

    #: How long a poll is held open when there is nothing for the device to do.
    poll_wait_s: float = Field(20.0, gt=0, le=120)
    #: A device that has not polled for this long is shown offline.
    offline_after_s: float = Field(60.0, gt=0)
    #: "token": every poll carries the device's bearer token, provisioned per device.
    security: Literal["off", "token"] = "off"
    #: Base URL devices download packages from (the API); default: the API's address.
    package_base_url: str | None = None
    #: Upper bound for one command (an inference) to come back.
    request_timeout_s: float = Field(30.0, gt=0)
    #: Upper bound for an update: download, install and, for firmware, the reboot.
    update_timeout_s: float = Field(300.0, gt=0)
    grant_ttl_s: float = Field(3600.0, gt=0)


class DeviceSettings(BaseModel):
    """The device registry and rollouts."""

    #: A device that joins with an endpoint nobody registered: "accept" records it and lets it
    #: in; "hold" refuses it and lists it as pending until an operator approves it.
    unknown: Literal["accept", "hold"] = "accept"
    #: How often what the orchestrator saw (joins, polls, departures) is written, in one batch.
    flush_s: float = Field(0.2, gt=0, le=10)


class ClusterSettings(BaseModel):
    """Beyond one machine: workers behind a broker, several instances on one database."""

    #: Redis URL of the Dramatiq broker (``redis://127.0.0.1:6379/0``); set: training, evaluation
    #: and build jobs go to ``tinymlaas worker`` processes; None: they run in this process.
    broker_url: str | None = None
    #: This instance's name among the instances sharing one PostgreSQL database and data directory
    #: (unique; its devices and in-process jobs are recorded under it); None: the only instance.
    instance: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    #: Where the other instances reach this one's API (requests about its devices are sent
    #: here); default: http://api_host:api_port.
    api_url: str | None = None
    #: A job's runner renews its lease every third of this; a job whose lease ran out is retried
    #: or failed by any instance or worker.
    lease_s: float = Field(30.0, ge=1.0, le=3600.0)
    #: Attempts of a worker's job whose worker died (1: fail it at the first death).
    attempts: int = Field(2, ge=1, le=10)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TINYMLAAS_", env_nested_delimiter="__")

    #: Where the service keeps everything it writes (database file, artifacts, caches, work).
    data_dir: Path = REPO_ROOT / "var"
    targets_dir: Path = REPO_ROOT / "targets"
    #: Trained zoo models, cached by recipe hash; default: ``data_dir/zoo``.
    zoo_dir: Path = REPO_ROOT / "var" / "zoo"
    #: SQLAlchemy URL of the database (e.g. ``postgresql+psycopg://user@127.0.0.1/tinymlaas``);
    #: default: one SQLite file in ``data_dir``.
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    #: Largest request body the API reads (an upload); larger ones get 413 before they are read.
    max_body_bytes: int = Field(256 << 20, gt=0)
    api_port: int = Field(8000, ge=0, le=65535)
    build: BuildSettings = BuildSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    #: The orchestrator plugin that talks to devices (entry-point group tinymlaas.orchestrators).
    orchestrator: str = "lwm2m"
    #: Deployments running at once (they wait on devices; builds have their own limit).
    deploy_concurrency: int = Field(64, ge=1, le=4096)
    #: How often the dashboard's telemetry reads every online device (firmware, model, counters).
    telemetry_interval_s: float = Field(60.0, gt=0)
    lwm2m: LwM2MSettings = LwM2MSettings()
    http_pull: HttpPullSettings = HttpPullSettings()
    devices: DeviceSettings = DeviceSettings()
    cluster: ClusterSettings = ClusterSettings()

    @model_validator(mode="before")
    @classmethod
    def _zoo_in_data_dir(cls, data: Any) -> Any:
        """The zoo cache follows the data directory unless it is set on its own."""
        if isinstance(data, dict) and data.get("zoo_dir") is None and data.get("data_dir") is not None:
            return {**data, "zoo_dir": Path(data["data_dir"]) / "zoo"}
        return data

    def plugin_options(self, name: str, options: type[BaseModel]) -> BaseModel | None:
        """A plugin's settings section (``lwm2m``, ``http_pull``), when it has one of its type."""
        section = getattr(self, name.replace("-", "_"), None)
        return section if isinstance(section, options) else None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tinymlaas.sqlite3'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


@lru_cache
def get_settings() -> Settings:
    return Settings()
