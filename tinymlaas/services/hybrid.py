"""Hybrid "cloud & TinyML" inference: the service serves a model version's float variant as a cloud
endpoint (in process, in the TFLM interpreter the devices are compared with); a device given a
policy answers what its int8 model is sure of and escalates the rest to it through its
orchestrator. Both sides count. A hybrid evaluation measures, on a dataset split, the accuracy of
local-only, hybrid and cloud-only answers and the escalation rate, in process and through a real
device; the cost model reads the newest one.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymlaas.cost.models import (
    DeviceHybrid,
    DeviceRecord,
    Endpoint,
    EndpointCreate,
    HybridEvaluation,
    HybridEvaluationRequest,
    Policy,
    PolicyRequest,
    SweepPoint,
)
from tinymlaas.datasets.models import EvaluationRequest, Lineage, Variant
from tinymlaas.datasets.tensors import fit_input
from tinymlaas.edge.hybrid import probabilities, quantized
from tinymlaas.edge.tflm import Tflm, dequantize, quantize
from tinymlaas.errors import Conflict, InvalidInput, NotFound, TinyMLaaSError
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Escalation, HybridState, Job, Model
from tinymlaas.plugins.base import Orchestrator, Progress, no_progress
from tinymlaas.store import Store, now

#: Thresholds a hybrid evaluation also tries (in process), so a threshold can be chosen on a curve.
SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
DEFAULT_THRESHOLD = 0.8


# -- cloud endpoints -------------------------------------------------------------------------------


def _variants(store: Store, model: Model) -> dict[Variant, str]:
    try:
        return store.datasets.lineage(model.id).variants
    except NotFound:
        int8 = bool(model.info.inputs) and model.info.inputs[0].dtype == "int8"
        return {Variant.int8 if int8 else Variant.float: model.sha256}


def create_endpoint(store: Store, req: EndpointCreate) -> Endpoint:
    """A cloud endpoint for a model version whose devices run its int8 model (refused at once when
    the model has no such variant or its devices could not escalate to it)."""
    model = store.model(req.model)
    if not model.info.inputs or model.info.inputs[0].scale is None:
        raise InvalidInput(f"model '{model.name}:{model.version}' is not quantized: devices run int8 models, "
                           "and a hybrid device escalates what its int8 model is unsure of")
    if len(model.info.inputs) != 1 or len(model.info.outputs) != 1:
        raise InvalidInput(f"model '{model.name}:{model.version}' has {len(model.info.inputs)} inputs and "
                           f"{len(model.info.outputs)} outputs: a hybrid device escalates a classifier's "
                           "one input, judged by its one output")
    variants = _variants(store, model)
    if Variant(req.variant) not in variants:
        raise InvalidInput(f"model '{model.name}:{model.version}' has no {req.variant} variant "
                           f"(it has {', '.join(v.value for v in variants)})")
    return store.cost.add_endpoint(model.id, req.variant, variants[Variant(req.variant)])


@dataclass
class _Loaded:
    tflm: Tflm
    lock: threading.Lock
    sha256: str
    scale: float
    zero_point: int
    size: int


class Cloud:
    """The cloud side: each endpoint's model loaded once into its own TFLM interpreter, one
    inference at a time each (an interpreter is not thread-safe).

    Escalations are counted in memory and written at most every ``flush_every_s`` by a thread of
    their own (and before anything reads the counts), so an escalation waits for its answer, not
    for a database commit: a crash loses at most that long's counts."""

    def __init__(self, store: Store, flush_every_s: float = 0.5) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}
        self._counts_lock = threading.Lock()
        self._flushed = time.monotonic()

    def _load(self, endpoint: Endpoint) -> _Loaded:
        with self._lock:
            got = self._loaded.get(endpoint.id)
            if got is None or got.sha256 != endpoint.sha256:
                spec = self.store.model(endpoint.model_id).info.inputs[0]
                assert spec.scale is not None and spec.zero_point is not None  # checked at creation
                blob = self.store.artifacts.get(endpoint.sha256).read_bytes()
                got = _Loaded(Tflm(blob), threading.Lock(), endpoint.sha256, spec.scale, spec.zero_point,
                              int(np.prod(spec.shape)))
                self._loaded[endpoint.id] = got
            return got

    def answer(self, device: str, tensor: bytes) -> Escalation:
        """One escalated inference: the device's int8 input, dequantized as its model quantized it,
        through the endpoint's model; counted for the device and the endpoint."""
        try:
            policy = self.store.cost.policy(device)
        except NotFound:
            raise Conflict(f"device '{device}' has no hybrid policy on this service: it escalates nowhere"
                           ) from None
        endpoint = self.store.cost.endpoint(policy.cloud)
        loaded = self._load(endpoint)
        if len(tensor) != loaded.size:
            raise InvalidInput(f"the input has {len(tensor)} bytes; model {endpoint.model} takes "
                               f"{loaded.size}")
        values = dequantize(np.frombuffer(tensor, dtype=np.int8), loaded.scale, loaded.zero_point)
        with loaded.lock:
            t0 = time.perf_counter_ns()
            out = loaded.tflm.invoke_float(values).ravel()
            compute_us = (time.perf_counter_ns() - t0) // 1000
        self._count(device, endpoint.id, compute_us)
        return Escalation(values=[float(v) for v in out], label=int(np.argmax(out)),
                          model_sha256=endpoint.sha256, compute_us=compute_us)

    def _count(self, device: str, endpoint_id: str, compute_us: int) -> None:
        with self._counts_lock:
            n, us = self._pending.get((device, endpoint_id), (0, 0))
            self._pending[(device, endpoint_id)] = (n + 1, us + compute_us)
            due = time.monotonic() - self._flushed >= self.flush_every_s
            if due:
                self._flushed = time.monotonic()  # one writer at a time
        if due:
            threading.Thread(target=self.flush, name="escalation-counts", daemon=True).start()

    def flush(self) -> None:
        """Write the counts not written yet (kept for the next try if the write fails)."""
        with self._counts_lock:
            batch, self._pending, self._flushed = self._pending, {}, time.monotonic()
        if not batch:
            return
        try:
            self.store.cost.count_escalations(batch)
        except BaseException:
            with self._counts_lock:
                for key, (n, us) in batch.items():
                    m, v = self._pending.get(key, (0, 0))
                    self._pending[key] = (m + n, v + us)
            raise

    async def escalate(self, device: str, tensor: bytes) -> Escalation:
        """:meth:`answer` off the event loop (the orchestrators call it from there)."""
        return await asyncio.to_thread(self.answer, device, tensor)

    def forget(self, endpoint_id: str) -> None:
        with self._lock:
            self._loaded.pop(endpoint_id, None)


def endpoints(store: Store, cloud: Cloud, model: str | None) -> list[Endpoint]:
    cloud.flush()
    return store.cost.endpoints(store.model(model).id if model else None)


def endpoint(store: Store, cloud: Cloud, endpoint_id: str) -> Endpoint:
    """The endpoint and what it served (counted up to now)."""
    cloud.flush()
    return store.cost.endpoint(endpoint_id)


def delete_endpoint(store: Store, cloud: Cloud, endpoint_id: str) -> None:
    """The endpoint and the policies pointing at it (their devices' escalations are then refused and
    the devices answer locally)."""
    cloud.flush()
    store.cost.delete_endpoint(endpoint_id)
    cloud.forget(endpoint_id)


# -- device policies -------------------------------------------------------------------------------


def _rate(state: HybridState | None) -> float | None:
    if state is None or state.local + state.escalated == 0:
        return None
    return round(state.escalated / (state.local + state.escalated), 4)


def _view(device: str, policy: Policy | None, state: HybridState | None) -> DeviceHybrid:
    return DeviceHybrid(device=device, policy=policy, reported=state,
                        local=state.local if state else None, escalated=state.escalated if state else None,
                        served=policy.escalations if policy else 0, escalation_rate=_rate(state))


async def set_policy(store: Store, orch: Orchestrator, cloud: Cloud, device: str, req: PolicyRequest
                     ) -> DeviceHybrid:
    """Give a device its policy through its orchestrator; it must run the endpoint's int8 model
    (the cloud reads its inputs with that model's quantization)."""
    endpoint = store.cost.endpoint(req.cloud)
    caps = await orch.capabilities(device)
    if caps.model_sha256 != endpoint.device_model_sha256:
        raise Conflict(f"device '{device}' runs model {str(caps.model_sha256)[:12]}; cloud endpoint "
                       f"'{endpoint.id}' answers for {endpoint.model} ({endpoint.device_model_sha256[:12]}): "
                       "deploy that model to the device first")
    state = await orch.set_hybrid(device, req.threshold, endpoint.id)
    cloud.flush()
    return _view(device, store.cost.set_policy(device, endpoint.id, req.threshold), state)


async def device_hybrid(store: Store, orch: Orchestrator, cloud: Cloud, device: str) -> DeviceHybrid:
    """The policy the service gave the device, what the device reports now (if online), and the
    escalations the service answered."""
    cloud.flush()
    try:
        policy: Policy | None = store.cost.policy(device)
    except NotFound:
        policy = None
    orch.device(device)  # NotFound for a device never seen
    try:
        state = (await orch.capabilities(device)).hybrid
    except TinyMLaaSError:
        state = None
    return _view(device, policy, state)


async def drop_policy(store: Store, orch: Orchestrator, cloud: Cloud, device: str) -> DeviceHybrid:
    """Every inference answered on the device again."""
    policy = store.cost.policy(device)
    state = await orch.set_hybrid(device, None, None)
    cloud.flush()
    store.cost.drop_policy(policy.device)
    return _view(device, None, state)


# -- hybrid evaluations ----------------------------------------------------------------------------


@dataclass
class Plan:
    model: Model
    lineage: Lineage
    float_sha256: str
    threshold: float
    device: str | None
    cloud: Cloud | None = None  # whose counts a device run reads


def plan_evaluation(store: Store, req: HybridEvaluationRequest) -> Plan:
    """Everything that can be refused, refused now."""
    from tinymlaas.services.evaluation import _subject

    model, lineage = _subject(store, EvaluationRequest(model=req.model, dataset=req.dataset, split=req.split))
    variants = _variants(store, model)
    if Variant.float not in variants or Variant.int8 not in variants:
        raise InvalidInput(f"model '{model.name}:{model.version}' needs an int8 and a float variant for a "
                           f"hybrid (it has {', '.join(v.value for v in variants)})")
    threshold = req.threshold
    if req.device is not None:
        policy = store.cost.policy(req.device)
        if threshold is not None and abs(threshold - policy.threshold) > 1e-9:
            raise Conflict(f"device '{req.device}' escalates below {policy.threshold:g}, not {threshold:g}: "
                           "set its policy first")
        threshold = policy.threshold
    return Plan(model=model, lineage=lineage, float_sha256=variants[Variant.float],
                threshold=threshold if threshold is not None else DEFAULT_THRESHOLD, device=req.device)


def start_evaluation(store: Store, runner: JobRunner, orch: Orchestrator, cloud: Cloud,
                     req: HybridEvaluationRequest) -> Job:
    plan = plan_evaluation(store, req)
    plan.cloud = cloud
    job = store.new_job("hybrid-evaluation")
    runner.submit_async(job, lambda p: _evaluate(store, orch, plan, req, p, job.id))
    return job


async def _evaluate(store: Store, orch: Orchestrator | None, plan: Plan, req: HybridEvaluationRequest,
                    progress: Progress, job_id: str | None) -> dict[str, Any]:
    result = await evaluate(store, orch, plan, req, progress, job_id)
    return result.model_dump(mode="json")


@dataclass
class _InProcess:
    x: np.ndarray
    y: np.ndarray
    local: np.ndarray  # int8 model's class
    confidence: np.ndarray  # its top probability, as a device computes it
    escalated_answer: np.ndarray  # the class a device answers with the cloud's output for its input
    cloud: np.ndarray  # the float model's class for the original input


def _in_process(store: Store, plan: Plan, x: np.ndarray, y: np.ndarray) -> _InProcess:
    int8 = Tflm(store.artifacts.get(plan.model.sha256).read_bytes())
    cloud = Tflm(store.artifacts.get(plan.float_sha256).read_bytes())
    qi, qo = int8.input["quantization_parameters"], int8.output["quantization_parameters"]
    in_scale, in_zp = float(qi["scales"][0]), int(qi["zero_points"][0])
    spec = {"dtype": "int8", "scale": float(qo["scales"][0]), "zero_point": int(qo["zero_points"][0])}
    local, conf, escalated, whole = [], [], [], []
    for row in x:
        q = quantize(row, in_scale, in_zp, np.int8)
        out = int8.invoke(q).ravel()
        local.append(int(np.argmax(out)))
        conf.append(max(probabilities(out.astype(np.int8).tobytes(), spec)))
        # As the device does: the cloud's output for its int8 input, in its own output codes.
        answer = cloud.invoke_float(dequantize(q, in_scale, in_zp)).ravel()
        escalated.append(int(np.argmax(np.frombuffer(quantized([float(v) for v in answer], spec), np.int8))))
        whole.append(int(np.argmax(cloud.invoke_float(row[np.newaxis]))))
    return _InProcess(x, y, np.asarray(local), np.asarray(conf), np.asarray(escalated), np.asarray(whole))


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean(pred == y)), 4) if len(y) else 0.0


def _sweep(r: _InProcess, thresholds: list[float]) -> list[SweepPoint]:
    points = []
    for t in sorted(set(thresholds)):
        esc = r.confidence < t
        hybrid = np.where(esc, r.escalated_answer, r.local)
        points.append(SweepPoint(threshold=t, escalation_rate=round(float(np.mean(esc)), 4),
                                 accuracy=_accuracy(hybrid, r.y)))
    return points


async def _on_device(store: Store, orch: Orchestrator, plan: Plan, r: _InProcess,
                     progress: Progress) -> DeviceRecord:
    from tinymlaas.services.devices import input_tensor

    device, cloud = plan.device, plan.cloud
    assert device is not None and cloud is not None
    cloud.flush()
    caps = await orch.capabilities(device)
    if caps.model_sha256 != plan.model.sha256:
        raise Conflict(f"device '{device}' runs model {str(caps.model_sha256)[:12]}, not "
                       f"{plan.model.name}:{plan.model.version}")
    before, served = caps.hybrid or HybridState(), store.cost.policy(device).escalations
    start = time.monotonic()
    predicted, agree = [], 0
    for i, row in enumerate(r.x):
        report = await orch.infer(device, input_tensor(caps, values=row.ravel().tolist(), raw=None))
        predicted.append(int(np.argmax(report.output)))
        agree += bool(report.escalated) == bool(r.confidence[i] < plan.threshold)
        progress(f"sample {i + 1}/{len(r.x)} on {device}", 0.3 + 0.65 * (i + 1) / len(r.x))
    after = (await orch.capabilities(device)).hybrid or HybridState()
    cloud.flush()
    return DeviceRecord(device=device, escalated=after.escalated - before.escalated,
                        local=after.local - before.local, failed=after.failed - before.failed,
                        served=store.cost.policy(device).escalations - served, agree=agree,
                        accuracy=_accuracy(np.asarray(predicted), r.y),
                        seconds=round(time.monotonic() - start, 2))


def plot(points: list[SweepPoint], accuracy: dict[str, float], threshold: float, title: str) -> bytes:
    """Accuracy and escalation rate against the threshold, local-only and cloud-only as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ts = [p.threshold for p in points]
    ax.plot(ts, [p.accuracy for p in points], "o-", color="tab:purple", label="hybrid accuracy")
    ax.axhline(accuracy["local"], color="tab:green", ls="--", label=f"TinyML only {accuracy['local']:.2%}")
    ax.axhline(accuracy["cloud"], color="tab:blue", ls="--", label=f"cloud only {accuracy['cloud']:.2%}")
    ax.set_xlabel("confidence threshold (escalate below)")
    ax.set_ylabel("accuracy on the split")
    ax2 = ax.twinx()
    ax2.bar(ts, [p.escalation_rate for p in points], width=0.02, color="tab:orange", alpha=0.5,
            label="escalation rate")
    ax2.set_ylabel("escalation rate")
    ax2.set_ylim(0, 1)
    ax.axvline(threshold, color="grey", lw=0.8)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


async def evaluate(store: Store, orch: Orchestrator | None, plan: Plan, req: HybridEvaluationRequest,
                   progress: Progress = no_progress, job_id: str | None = None) -> HybridEvaluation:
    from tinymlaas.services.training import load_data

    lineage = plan.lineage
    ds = store.datasets.get(lineage.dataset_id)
    progress(f"loading {ds.name}:{lineage.dataset_version} ({req.split.value})", 0.02)
    data = await asyncio.to_thread(load_data, store, ds, lineage.dataset_version, (req.split,))
    x = fit_input(data.x[req.split][: req.limit], lineage.input_size)
    y = data.y[req.split][: req.limit]
    if not len(y):
        raise InvalidInput(f"dataset '{ds.name}' version {lineage.dataset_version} has no labelled "
                           f"{req.split.value} samples")
    progress("int8 and float in process (TFLM)", 0.1)
    r = await asyncio.to_thread(_in_process, store, plan, x, y)
    escalated = r.confidence < plan.threshold
    accuracy = {"local": _accuracy(r.local, y), "cloud": _accuracy(r.cloud, y),
                "hybrid": _accuracy(np.where(escalated, r.escalated_answer, r.local), y)}
    device = None
    if plan.device is not None:
        assert orch is not None
        device = await _on_device(store, orch, plan, r, progress)
    sweep = _sweep(r, [*SWEEP, plan.threshold])
    title = (f"{plan.model.name}:{plan.model.version} on {ds.name}:{lineage.dataset_version} "
             f"{req.split.value} ({len(y)} samples)")
    png = await asyncio.to_thread(plot, sweep, accuracy, plan.threshold, title)
    evaluation = HybridEvaluation(
        id=uuid.uuid4().hex[:12], job_id=job_id, model_id=plan.model.id, dataset_id=ds.id,
        dataset_version=lineage.dataset_version, split=req.split, threshold=plan.threshold, samples=len(y),
        escalated=int(escalated.sum()),
        escalation_rate=round(device.escalated / len(y) if device else float(escalated.mean()), 4),
        accuracy=accuracy, device=device, sweep=sweep, plot_sha256=store.artifacts.put_bytes(png),
        created_at=now())
    return store.cost.add_evaluation(evaluation)


def evaluate_now(store: Store, req: HybridEvaluationRequest, progress: Progress = no_progress
                 ) -> HybridEvaluation:
    """In process, in this thread (the CLI): no device."""
    if req.device is not None:
        raise InvalidInput("a device evaluation runs through the service: POST /hybrid/evaluations")
    plan = plan_evaluation(store, req)
    return asyncio.run(evaluate(store, None, plan, req, progress))
