"""Typed records of the CFO's area: figures with their source, cost comparisons, the cloud endpoint
that serves a model version to escalating devices, device policies and hybrid evaluations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.cost.model import BreakEven, Option, OptionName
from tinymlaas.datasets.models import Split
from tinymlaas.models import HybridState


class Source(enum.StrEnum):
    measured = "measured"
    default = "default"
    user = "user"


class Figure(BaseModel):
    """One number of a comparison and where it came from."""

    value: float
    unit: str
    source: Source
    ref: str = Field(description="the measurement (profile, build, evaluation), the document a default "
                                 "is read from, or 'given'")


class CostRequest(BaseModel):
    """Compare cloud, TinyML and hybrid inference for a model version on a board."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model version: id, name, or name:version")
    board: str | None = Field(None, description="default: the board of the newest instruction count")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="the hybrid's confidence threshold: the newest hybrid evaluation at it "
                                      "gives the escalation rate (default: the newest at any threshold)")
    inputs: dict[str, float] = Field(
        {}, description="figures you give, by name (GET /cost/inputs): they replace measured and default "
                        "ones")


class InputSpec(BaseModel):
    """One input of the cost model: its unit, what it means, its default or what measures it."""

    name: str
    unit: str
    description: str
    default: Figure | None = None
    measured_from: str | None = Field(None, description="what fills it when it is measured")


class Accuracy(BaseModel):
    """An option's accuracy on a dataset's test split."""

    value: float
    ref: str


class Comparison(BaseModel):
    model_id: str
    model: str = Field(description="name:version")
    board: str
    inputs: dict[str, Figure]
    options: list[Option]
    cheapest: OptionName
    break_even: list[BreakEven]
    accuracy: dict[OptionName, Accuracy] = Field({}, description="per option, where measured")
    summary: str
    notes: list[str] = []


# -- the hybrid pipeline ---------------------------------------------------------------------------


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="the model version whose devices escalate (they run its int8 variant)")
    variant: Literal["float", "int8"] = Field("float", description="what the cloud runs")


class Endpoint(BaseModel):
    """A cloud inference endpoint: a model version's variant in the service's TFLM interpreter."""

    id: str
    model_id: str
    model: str = Field(description="name:version")
    variant: Literal["float", "int8"]
    sha256: str = Field(description="the variant the cloud runs")
    device_model_sha256: str = Field(description="the int8 model devices must run to escalate here")
    created_at: datetime
    served: int = Field(0, description="escalated inferences answered")
    compute_us: int = Field(0, description="their interpreter time, summed (microseconds)")


class PolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cloud: str = Field(description="the cloud endpoint to escalate to (its id)")
    threshold: float = Field(gt=0, lt=1, description="escalate when the top class's probability is below it")


class Policy(BaseModel):
    device: str
    cloud: str = Field(description="the cloud endpoint it escalates to")
    threshold: float
    set_at: datetime
    escalations: int = Field(0, description="escalations of this device the service answered")


class DeviceHybrid(BaseModel):
    """A device's hybrid inference: the policy the service gave it, the counts the device reports and
    the escalations the service answered."""

    device: str
    policy: Policy | None
    reported: HybridState | None = Field(None, description="as the device reports it (None: offline)")
    local: int | None = Field(None, description="inferences the device answered itself (device's count)")
    escalated: int | None = Field(None, description="inferences the cloud answered (device's count)")
    served: int = Field(0, description="escalations the service answered for this device (its count)")
    escalation_rate: float | None = Field(None, description="escalated / (local + escalated)")


class HybridEvaluationRequest(BaseModel):
    """Local-only vs hybrid vs cloud-only accuracy on a dataset split, and the escalation rate: in
    process (TFLM, both variants), or through a device that has a hybrid policy."""

    model_config = ConfigDict(extra="forbid")

    model: str
    threshold: float | None = Field(None, gt=0, lt=1,
                                    description="default: the device's policy's threshold, or 0.8")
    device: str | None = Field(None, description="run the split through this device (it must have a policy)")
    dataset: str | None = Field(None, description="default: the dataset version the model was made from")
    split: Split = Split.test
    limit: int | None = Field(None, ge=1, le=100_000)


class SweepPoint(BaseModel):
    threshold: float
    escalation_rate: float
    accuracy: float


class DeviceRecord(BaseModel):
    """What the device and the service counted while the split ran through the device."""

    device: str
    escalated: int = Field(description="inferences the device reports as answered by the cloud")
    local: int
    failed: int = Field(0, description="escalations that did not come back (the local answer stood)")
    served: int = Field(description="escalations the service answered meanwhile")
    agree: int = Field(description="inferences where the device escalated exactly when the in-process "
                                   "int8 model is below the threshold")
    accuracy: float = Field(description="of the device's final answers")
    seconds: float


class HybridEvaluation(BaseModel):
    id: str
    job_id: str | None
    model_id: str
    dataset_id: str
    dataset_version: int
    split: Split
    threshold: float
    samples: int
    escalated: int = Field(description="in process: samples whose int8 confidence is below the threshold")
    escalation_rate: float = Field(description="the device's, when it ran; else in process")
    accuracy: dict[str, float] = Field(description="local (int8 only), cloud (float only), hybrid")
    device: DeviceRecord | None = None
    sweep: list[SweepPoint] = []
    plot_sha256: str | None = None
    created_at: datetime
