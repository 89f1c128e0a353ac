"""Typed records of the data scientist's area: datasets and their samples, training runs, model
lineage, evaluations and profiles across boards."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A name users give (datasets, collected devices): what model names allow.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class Task(enum.StrEnum):
    """What a dataset's samples are, which decides the file formats and the model template."""

    image = "image"
    time_series = "time-series"
    tabular = "tabular"


class Split(enum.StrEnum):
    train = "train"
    validation = "validation"
    test = "test"


class SplitSpec(BaseModel):
    """Fractions of the deterministic split: a sample's part follows from its content's hash and
    ``seed`` alone, so it never moves when samples are added, relabelled or uploaded in another
    order, and a test sample never becomes a training one in a later version."""

    model_config = ConfigDict(extra="forbid")

    train: float = Field(0.7, gt=0, lt=1)
    validation: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-6:
            raise ValueError("train + validation + test must be 1")
        return self


SampleDtype = Literal["uint8", "int16", "float32"]


class SampleSpec(BaseModel):
    """What every sample of a dataset is: its shape and dtype, and the classes it may be labelled
    with. Images are [height, width, channels] (1 or 3), time series and audio [length, channels],
    tabular rows [features]."""

    model_config = ConfigDict(extra="forbid")

    shape: list[int] = Field(min_length=1, max_length=3)
    dtype: SampleDtype = "float32"
    classes: list[str] = Field(min_length=2, max_length=1000)
    sample_rate: int | None = Field(None, gt=0, description="audio: samples per second a WAV must have")
    features: list[str] | None = Field(None, description="tabular: the CSV columns, in order")

    @model_validator(mode="after")
    def _sane(self) -> SampleSpec:
        if any(d < 1 or d > 1 << 20 for d in self.shape):
            raise ValueError("every dimension of shape must be 1..1048576")
        if len(set(self.classes)) != len(self.classes) or any(not c.strip() for c in self.classes):
            raise ValueError("classes must be distinct, non-empty names")
        if self.features is not None and [len(self.features)] != self.shape:
            raise ValueError("features must name each of the shape's values once")
        return self

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    task: Task
    spec: SampleSpec
    split: SplitSpec = SplitSpec()
    description: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _shape_fits_task(self) -> DatasetCreate:
        check_shape(self.task, self.spec)
        return self


def check_shape(task: Task, spec: SampleSpec) -> None:
    """The shape a task's samples have (ValueError saying which)."""
    rank = len(spec.shape)
    if task is Task.image and (rank != 3 or spec.shape[2] not in (1, 3)):
        raise ValueError("an image dataset's shape is [height, width, channels] with 1 or 3 channels")
    if task is Task.time_series and rank != 2:
        raise ValueError("a time-series dataset's shape is [length, channels]")
    if task is Task.tabular and rank != 1:
        raise ValueError("a tabular dataset's shape is [features]")


class DatasetUpdate(BaseModel):
    """What may change on a dataset: more classes (appended: a model's class indices stay) and
    the description."""

    model_config = ConfigDict(extra="forbid")

    add_classes: list[str] = []
    description: str | None = Field(None, max_length=2000)


class Dataset(BaseModel):
    id: str
    name: str
    task: Task
    spec: SampleSpec
    split: SplitSpec
    description: str = ""
    head: int = Field(description="the version that uploads and labels change")
    created_at: datetime


class Sample(BaseModel):
    """One sample: its data is the artifact ``sha256`` (an .npy of the dataset's shape and dtype)."""

    id: str
    label: str | None
    split: Split
    sha256: str
    source: str = Field(description="where it came from: upload:FILE, archive:ZIP/ENTRY, device:ENDPOINT")
    version: int = Field(description="the version that added it (or its current label)")
    created_at: datetime


class SamplePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[Sample]


class Refusal(BaseModel):
    """A sample that was not added, and why."""

    name: str
    reason: str


class UploadResult(BaseModel):
    """An upload's outcome, sample by sample: a bad sample is refused alone, the rest is kept."""

    dataset: str
    version: int
    accepted: list[Sample]
    refused: list[Refusal]


class LabelRequest(BaseModel):
    """Label (or, with ``label: null``, unlabel) one or many samples."""

    model_config = ConfigDict(extra="forbid")

    samples: list[str] = Field(min_length=1, max_length=100_000)
    label: str | None


class Changed(BaseModel):
    """What a label or removal changed, and in which version."""

    dataset: str
    version: int
    changed: int


class Counts(BaseModel):
    total: int = 0
    unlabelled: int = 0
    labels: dict[str, int] = {}
    splits: dict[str, int] = {}


class DatasetVersion(BaseModel):
    """A version of a dataset; ``locked`` once a model was trained on it: nothing changes it then,
    the next change makes a new version."""

    version: int
    locked: bool
    models: list[str] = Field([], description="model versions trained or calibrated on it (id)")
    counts: Counts
    created_at: datetime


class DatasetDetail(Dataset):
    counts: Counts
    versions: list[DatasetVersion]


# -- collecting from devices ------------------------------------------------------------------


class CollectRequest(BaseModel):
    """Add the inputs of a device's next inferences to a dataset, unlabelled: ``count`` of them,
    or until stopped with ``continuous``."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=200)
    count: int = Field(1, ge=1, le=100_000)
    continuous: bool = False
    timeout_s: float = Field(300.0, gt=0, le=86_400, description="once: give up after this long")


class Collector(BaseModel):
    dataset: str
    endpoint: str
    job_id: str
    continuous: bool
    collected: int
    refused: int


# -- training ---------------------------------------------------------------------------------

Template = Literal["cnn", "ds-cnn", "mlp"]
#: The model template each task trains when the settings name none.
DEFAULT_TEMPLATE: dict[Task, Template] = {Task.image: "cnn", Task.time_series: "ds-cnn", Task.tabular: "mlp"}
#: The templates that can take a task's samples.
TEMPLATES: dict[Task, tuple[Template, ...]] = {
    Task.image: ("cnn", "ds-cnn"),
    Task.time_series: ("ds-cnn", "cnn"),
    Task.tabular: ("mlp",),
}


class TrainingSettings(BaseModel):
    """How to train: every field has a default, and a field not listed here is refused."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="a dataset's id or name; ``name:version`` for an older version")
    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="the model's name (default: the dataset's)"
    )
    template: Template | None = Field(
        None,
        description="cnn (images), ds-cnn (depthwise-separable, time series and audio), mlp "
        "(tabular); default: the task's",
    )
    input_size: list[int] | None = Field(
        None,
        min_length=1,
        max_length=2,
        description="images: [height, width] to resize to; time series: [length] to resample to",
    )
    width: int = Field(
        16, ge=2, le=256, description="filters (or units) of the first layer; later ones double"
    )
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=4096)
    learning_rate: float = Field(0.005, gt=0, le=1)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    loss: Literal["crossentropy", "focal"] = "crossentropy"
    label_smoothing: float = Field(0.0, ge=0, le=0.5)
    augmentation: bool = False
    seed: int = Field(1, ge=0, le=2**31 - 1)
    base: str | None = Field(None, description="continue training this model version (id or name:version)")
    calibration_samples: int = Field(
        500, ge=1, le=100_000, description="training samples the int8 conversion is calibrated on"
    )


class EpochMetrics(BaseModel):
    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0


class TrainingState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Training(BaseModel):
    """One training run: its settings, the dataset version it locked, each epoch as it ends, the
    model version it made."""

    id: str
    job_id: str
    dataset_id: str
    dataset_version: int
    settings: TrainingSettings
    state: TrainingState
    epochs: list[EpochMetrics] = []
    model_id: str | None = None
    error: str | None = None
    seconds: float | None = None
    created_at: datetime


# -- lineage and evaluations ------------------------------------------------------------------


class ClassMetrics(BaseModel):
    label: str
    precision: float | None
    recall: float | None
    support: int


class Metrics(BaseModel):
    """A model's predictions against the true labels of a split."""

    samples: int
    accuracy: float
    classes: list[ClassMetrics]
    confusion: list[list[int]] = Field(description="rows: true label, columns: predicted (in class order)")


class Variant(enum.StrEnum):
    int8 = "int8"
    float = "float"
    keras = "keras"


class Lineage(BaseModel):
    """Where a model version came from: the dataset version, how it was made, what it scored, and
    its variants (the registered .tflite is the int8 one, or the float one when there is no other)."""

    model_id: str
    kind: Literal["trained", "imported"]
    dataset_id: str
    dataset: str
    dataset_version: int
    classes: list[str]
    input_size: list[int] = Field(description="the model's input shape (without the batch)")
    settings: dict[str, Any] = {}
    seed: int | None = None
    training_id: str | None = None
    parent_model_id: str | None = None
    variants: dict[Variant, str] = Field(description="variant -> SHA-256 in the artifact store")
    metrics: dict[str, Metrics] = Field({}, description="per variant, on the dataset version's test split")
    created_at: datetime


class EvaluationRequest(BaseModel):
    """Evaluate a model version on a dataset split: its float and int8 variants in process, or,
    with ``target``, the int8 model on a device (an emulated board, or the x86 container)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    dataset: str | None = Field(None, description="default: the dataset version the model was made from")
    split: Split = Split.test
    target: str | None = Field(None, description="a board: run the split through the device built for it")
    limit: int | None = Field(None, ge=1, le=100_000, description="at most this many samples")


class DeviceRun(BaseModel):
    """How a device did on the split: its accuracy, and whether every output equals the in-process
    interpreter's bytes."""

    target: str
    emulator: str | None
    samples: int
    bit_exact: bool
    mismatches: int
    instructions: int | None = Field(None, description="per inference (emulated MCUs), median")
    seconds: float


class Evaluation(BaseModel):
    id: str
    job_id: str | None
    model_id: str
    dataset_id: str
    dataset_version: int
    split: Split
    target: str | None
    metrics: dict[str, Metrics] = Field({}, description="per variant (float, int8) or 'device'")
    device: DeviceRun | None = None
    plot_sha256: str | None = Field(None, description="the confusion matrices as a PNG (an artifact)")
    created_at: datetime


# -- profile across boards --------------------------------------------------------------------


class ProfileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    targets: list[str] | None = Field(None, description="default: every board")


class BoardProfile(BaseModel):
    """One board: whether the model fits (flash; RAM with the planned arena), the instructions one
    inference takes on the emulator, and the latency that implies at the board's clock."""

    board: str
    cpu: str
    clock_hz: int
    fits: bool
    reason: str = ""
    compiler: str
    arena_bytes: int | None = None
    flash_bytes: int | None = None
    flash_total: int
    ram_bytes: int | None = None
    ram_total: int
    emulator: str | None = None
    instructions: int | None = None
    latency_ms: float | None = Field(None, description="instructions / clock (one instruction per cycle)")
    measured: str = Field("", description="why there is no instruction count, if there is none")
    seconds: float = 0.0


class Profile(BaseModel):
    model_id: str | None
    model_sha256: str
    boards: list[BoardProfile]
    plot_sha256: str | None = None
    seconds: float
