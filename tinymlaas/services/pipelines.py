"""The operator's ML pipelines: a pipeline file checked against the service before anything runs
(every problem at once, each with its line), then run as a job graph in which each stage is the
service's own use case — a dataset version pinned, a training (which quantizes), the int8 model's
gate, a build per target, a rollout to a group — and re-run from the stage that failed.

The checks are the use cases' own: the dataset's resolution and the training's plan
(:func:`~tinymlaas.services.training.plan_training`), each target's compiler with its options,
its check of the model's ops and its fit on the board (the real compile, of the very model an
existing one, or of the template untrained — the same ops, tensors and sizes a training makes),
the toolchain, and the group with its devices' boards. (The demo's board loop is
:mod:`tinymlaas.services.pipeline`, another thing.)
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.datasets.models import TrainingSettings
from tinymlaas.errors import BuildFailed, Conflict, InvalidInput, TinyMLaaSError
from tinymlaas.fleet.models import FINAL_STATES, DeviceFacts
from tinymlaas.jobs import JobCancelled, JobRunner
from tinymlaas.models import Board, JobState
from tinymlaas.pipelines.models import PipelinePlan, PipelineProblem, PipelineRun, PipelineSource, Stage
from tinymlaas.pipelines.spec import Document, PipelineInvalid, PipelineSpec, TargetSpec, parse, parse_all
from tinymlaas.plugins.base import Compiler, Progress, no_progress
from tinymlaas.plugins.registry import builder_plugin
from tinymlaas.services.builds import start_build
from tinymlaas.services.compile import compile_with, make_compiler
from tinymlaas.services.datasets import resolve
from tinymlaas.services.rollouts import RolloutEngine, group_members
from tinymlaas.services.toolchains import toolchain_builder
from tinymlaas.services.training import Plan, plan_training, run_child, start_training
from tinymlaas.store import Store, now
from tinymlaas.targets import load_boards

#: How often a stage looks at the jobs it waits for.
POLL_S = 0.5
#: Devices named in one problem, at most.
MAX_NAMED = 10


# -- validation -----------------------------------------------------------------------------------

def validate(store: Store | None, settings: Settings, source: PipelineSource
             ) -> tuple[PipelineSpec, PipelinePlan]:
    """The file's spec and what it will do, or :class:`PipelineInvalid` naming every problem.
    Without a store (the CLI offline) only what needs no service: the file, boards, compilers."""
    spec, doc, problems = parse_all(source.source, source.filename)
    if spec is None:  # still name what is there and is wrong, so that every problem comes at once
        problems += _named_checks(store, settings, doc)
        raise PipelineInvalid(sorted(problems, key=lambda p: (p.line, p.column)), source.filename)
    model, dataset = _model_to_check(store, settings, spec, doc, problems) if store else (None, None)
    boards = load_boards(settings.targets_dir)
    seen: set[str] = set()
    for i, target in enumerate(spec.compile.targets):
        at = ("compile", "targets", i)
        board = boards.get(target.board)
        if board is None:
            problems.append(doc.problem((*at, "board"), f"board '{target.board}' is unknown; boards: "
                                        f"{', '.join(sorted(boards))}"))
            continue
        if board.name in seen:
            problems.append(doc.problem((*at, "board"), f"board '{board.name}' is given twice"))
            continue
        seen.add(board.name)
        comp = _target_checks(store, doc, at, target, board, problems)
        if comp is not None and model is not None:
            _fits(comp, model, board, doc, (*at, "board"), problems)
    devices = _group_checks(store, spec, doc, seen, problems) if spec.deploy is not None and store else []
    if problems:
        raise PipelineInvalid(sorted(problems, key=lambda p: (p.line, p.column)), source.filename)
    return spec, PipelinePlan(name=spec.name, stages=spec.stages(), model=spec.model, dataset=dataset,
                              targets=[t.board for t in spec.compile.targets],
                              group=spec.rollout(["-"]).group if spec.deploy is not None else None,
                              devices=devices)


def _named_checks(store: Store | None, settings: Settings, doc: Document) -> list[PipelineProblem]:
    """In a file with structural problems: the boards, dataset, model and group it names that do
    not exist."""
    data, found = doc.data, []
    boards = load_boards(settings.targets_dir)
    targets = data.get("compile", {}).get("targets") if isinstance(data.get("compile"), dict) else None
    for i, t in enumerate(targets if isinstance(targets, list) else []):
        board = t.get("board") if isinstance(t, dict) else None
        if isinstance(board, str) and board not in boards:
            found.append(doc.problem(("compile", "targets", i, "board"),
                                     f"board '{board}' is unknown; boards: {', '.join(sorted(boards))}"))
    deploy = data.get("deploy")
    group = deploy.get("group") if isinstance(deploy, dict) else None
    lookups: list[tuple[tuple[str, ...], Any, Callable[[str], object]]] = []
    if store is not None:
        lookups = [(("dataset",), data.get("dataset"), lambda ref: resolve(store, ref)),
                   (("model",), data.get("model"), store.model),
                   (("deploy", "group"), group, store.rollouts.group)]
    for at, name, look in lookups:
        if isinstance(name, str):
            try:
                look(name)
            except TinyMLaaSError as exc:
                found.append(doc.problem(at, exc.message))
    return found


def _model_to_check(store: Store, settings: Settings, spec: PipelineSpec, doc: Document,
                    problems: list[PipelineProblem]) -> tuple[bytes | None, str | None]:
    """The model whose ops and size the targets are checked with (None: a problem said why not),
    and the dataset version a training would use."""
    if spec.model is not None:
        try:
            rec = store.model(spec.model)
        except TinyMLaaSError as exc:
            problems.append(doc.problem(("model",), exc.message))
            return None, None
        return store.artifacts.get(rec.sha256).read_bytes(), None
    assert spec.dataset is not None
    try:
        ds, version = resolve(store, spec.dataset)
    except TinyMLaaSError as exc:
        problems.append(doc.problem(("dataset",), exc.message))
        return None, None
    dataset = f"{ds.name}:{version}"
    try:
        req = spec.training(dataset)
        return untrained_model(store, settings, plan_training(store, req), req), dataset
    except TinyMLaaSError as exc:
        # the training's refusals start with the field they are about ("template: ...")
        named = exc.message.split(":", 1)[0]
        where = ("train", named) if named in (spec.train or {}) else ("train",)
        problems.append(doc.problem(where, exc.message))
        return None, dataset


def _target_checks(store: Store | None, doc: Document, at: tuple[str | int, ...], target: TargetSpec,
                   board: Board, problems: list[PipelineProblem]) -> Compiler | None:
    """The target's compiler with its options, and its builder or toolchain (as a build checks them)."""
    comp = None
    try:
        comp = make_compiler(board, target.compiler, target.options)
    except TinyMLaaSError as exc:
        named = "options" if "option '" in exc.message else ("compiler" if target.compiler else "board")
        problems.append(doc.problem((*at, named), exc.message))
    try:
        if target.toolchain is not None and target.builder is not None:
            raise InvalidInput("give a builder or a toolchain, not both")
        if target.toolchain is not None and store is not None:
            toolchain_builder(store, target.toolchain, board)
        else:
            builder_plugin(target.builder or "docker")
    except TinyMLaaSError as exc:
        problems.append(doc.problem((*at, "toolchain" if target.toolchain else "builder"), exc.message))
    return comp


def _fits(comp: Compiler, model: bytes, board: Board, doc: Document, at: tuple[str | int, ...],
          problems: list[PipelineProblem]) -> None:
    """The compiler's own checks of the model on the board: its ops and dtypes, then its fit (the
    real compile, into a folder thrown away)."""
    with tempfile.TemporaryDirectory(prefix="tinymlaas-fit-") as tmp:
        try:
            compile_with(comp, model, board, Path(tmp) / "module")
        except TinyMLaaSError as exc:
            problems.append(doc.problem(at, f"board '{board.name}': {exc.message}"))


def _group_checks(store: Store, spec: PipelineSpec, doc: Document, boards: set[str],
                  problems: list[PipelineProblem]) -> list[str]:
    """The group exists, has devices, and each of them is a board the pipeline builds for."""
    group = spec.rollout(["-"]).group
    try:
        members = group_members(store, group)
    except TinyMLaaSError as exc:
        problems.append(doc.problem(("deploy", "group"), exc.message))
        return []
    if not members:
        problems.append(doc.problem(("deploy", "group"), f"group '{group}' has no devices"))
    stray = []
    for dev in members:
        board = (dev.reported or DeviceFacts()).board or dev.board
        if board not in boards:
            stray.append(f"{dev.endpoint} ({board or 'board unknown'})")
    if stray:
        more = f" and {len(stray) - MAX_NAMED} more" if len(stray) > MAX_NAMED else ""
        problems.append(doc.problem(("deploy", "group"), (
            f"group '{group}' has devices of boards the pipeline builds for none of: "
            f"{', '.join(stray[:MAX_NAMED])}{more}; add their boards under compile.targets")))
    return [d.endpoint for d in members]


def untrained_model(store: Store, settings: Settings, plan: Plan, req: TrainingSettings) -> bytes:
    """The int8 model a training with these settings makes, before it is trained: the base model
    when it continues one, else the template made and converted untrained in the trainer's child
    (kept by its architecture, so a second check is immediate)."""
    if plan.base is not None:
        return store.artifacts.get(plan.base.sha256).read_bytes()
    ds = plan.dataset
    job = {"mode": "untrained", "template": plan.template, "input_shape": plan.input_shape,
           "classes": ds.spec.classes, "width": req.width, "seed": req.seed}
    key = hashlib.sha256(json.dumps({**job, "sample_shape": ds.spec.shape}, sort_keys=True).encode())
    cached = settings.data_dir / "pipelines" / "untrained" / f"{key.hexdigest()[:32]}.tflite"
    if cached.is_file():
        return cached.read_bytes()
    work = settings.data_dir / "work" / f"untrained-{uuid.uuid4().hex[:12]}"
    work.mkdir(parents=True)
    try:
        calibration = np.random.default_rng(0).random((8, *ds.spec.shape)).astype(np.float32)
        run_child(work, job, {"x_calib": calibration}, no_progress, timeout_s=600)
        data = (work / "int8.tflite").read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_suffix(".part")
    part.write_bytes(data)
    part.replace(cached)
    return data


# -- running --------------------------------------------------------------------------------------

async def start_run(runner: JobRunner, engine: RolloutEngine, source: PipelineSource, *, download_base: str,
                    created_by: str = "") -> PipelineRun:
    """Validate (every refusal now), then run the stages as a job."""
    store = engine.store
    spec, _ = await asyncio.to_thread(validate, store, engine.settings, source)
    job = await asyncio.to_thread(store.new_job, "pipeline")
    run = await asyncio.to_thread(lambda: store.pipelines.create(
        run_id=uuid.uuid4().hex[:12], name=spec.name, filename=source.filename, source=source.source,
        job_id=job.id, created_by=created_by, stages=spec.stages()))
    runner.submit_async(job, lambda p: _drive(_Run(runner, engine, spec, run.id, download_base), p),
                        cancellable=True)
    return run


async def rerun(runner: JobRunner, engine: RolloutEngine, run_id: str, *, download_base: str) -> PipelineRun:
    """The failed (or cancelled) run again from the stage that failed; the stages that succeeded
    are kept."""
    store = engine.store
    run = await asyncio.to_thread(store.pipelines.get, run_id)
    if run.state not in ("failed", "cancelled"):
        raise Conflict(f"pipeline run '{run_id}' is {run.state}; only a failed or cancelled run is re-run")
    spec, _ = parse(run.source, run.filename)
    job = await asyncio.to_thread(store.new_job, "pipeline")
    run = await asyncio.to_thread(store.pipelines.rerun, run_id, job.id)
    runner.submit_async(job, lambda p: _drive(_Run(runner, engine, spec, run.id, download_base), p),
                        cancellable=True)
    return run


async def cancel(runner: JobRunner, store: Store, run_id: str, *, by: str) -> PipelineRun:
    """Stop a running run: the stage it is in stops its jobs (a training, a rollout; a build
    finishes on its own) and ends cancelled, the stages after it are not run; re-run it later to
    go on from that stage."""
    run = await asyncio.to_thread(store.pipelines.get, run_id)
    if run.state != "running":
        raise Conflict(f"pipeline run '{run_id}' is {run.state}; only a running run is cancelled")
    await asyncio.to_thread(store.pipelines.set, run_id, error=f"cancelled by {by or 'an operator'}")
    await asyncio.to_thread(runner.cancel, run.job_id)
    return await asyncio.to_thread(store.pipelines.get, run_id)


@dataclass
class _Run:
    """A run's driver: what its stages need, and what the stages before made."""

    runner: JobRunner
    engine: RolloutEngine
    spec: PipelineSpec
    run_id: str
    download_base: str
    made: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What the current stage waits for: its jobs, its rollout (stopped if the run is cancelled).
    jobs: list[str] = field(default_factory=list)
    rollout: str | None = None

    @property
    def store(self) -> Store:
        return self.engine.store

    async def say(self, stage: str, line: str, **fields: Any) -> Stage:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        return await asyncio.to_thread(lambda: self.store.pipelines.stage(
            self.run_id, stage, line=f"{stamp} {line}", **fields))

    async def follow(self, stage: str, job_ids: list[str], report: Callable[[float], None]) -> None:
        """Wait for the stage's jobs, logging each new step; a job that did not succeed fails it."""
        self.jobs = list(job_ids)
        last: dict[str, str] = {}
        while True:
            jobs = await asyncio.to_thread(lambda: [self.store.job(j) for j in job_ids])
            for job in jobs:
                if job.step and job.step != last.get(job.id):
                    last[job.id] = job.step
                    await self.say(stage, f"{job.kind} {job.id}: {job.step}" if len(jobs) > 1 else job.step)
            report(sum(j.progress for j in jobs) / len(jobs))
            if all(j.state in (JobState.succeeded, JobState.failed, JobState.cancelled) for j in jobs):
                break
            await asyncio.sleep(POLL_S)
        failed = [j for j in jobs if j.state != JobState.succeeded]
        if failed:
            raise BuildFailed("; ".join(f"{j.kind} job {j.id} {j.state.value}: {j.error}" for j in failed))


async def _drive(run: _Run, progress: Progress) -> dict[str, Any]:
    store = run.store
    state = await asyncio.to_thread(store.pipelines.get, run.run_id)
    run.made = {s.name: s.artifacts for s in state.stages if s.state == "succeeded"}
    total = len(state.stages)
    for i, stage in enumerate(state.stages):
        if stage.state == "succeeded":
            continue
        name = stage.name
        await run.say(name, f"attempt {state.attempt}: started", state="running", attempt=state.attempt,
                      started_at=now(), ended_at=None, error=None)

        def report(fraction: float, i: int = i, name: str = name) -> None:
            progress(f"{name} ({i + 1} of {total})", (i + min(max(fraction, 0.0), 1.0)) / total)

        report(0.0)
        run.jobs, run.rollout = [], None
        try:
            made = await STAGES[name](run, report)
        except (asyncio.CancelledError, JobCancelled):  # the run was cancelled
            await _stop_stage(run, name)
            raise
        except Exception as exc:
            why = exc.message if isinstance(exc, TinyMLaaSError) else \
                f"internal error: {type(exc).__name__}: {exc}"
            await run.say(name, f"failed: {why}", state="failed", error=why, ended_at=now())
            await asyncio.to_thread(store.pipelines.set, run.run_id, state="failed", error=f"{name}: {why}")
            raise
        run.made[name] = made
        await run.say(name, "succeeded", state="succeeded", artifacts=made, ended_at=now())
    await asyncio.to_thread(store.pipelines.set, run.run_id, state="succeeded", error=None)
    return {"run_id": run.run_id, "artifacts": run.made}


async def _stop_stage(run: _Run, name: str) -> None:
    """The run was cancelled in stage ``name``: stop what the stage started, say what could not be
    stopped, and end the stage and the run cancelled."""
    why = (await asyncio.to_thread(run.store.pipelines.get, run.run_id)).error or "cancelled"
    for job_id in run.jobs:
        try:
            await asyncio.to_thread(run.runner.cancel, job_id)
            await run.say(name, f"job {job_id} cancelled")
        except TinyMLaaSError as exc:  # ended already, or a build, which finishes on its own
            await run.say(name, f"job {job_id} not stopped: {exc.message}")
    if run.rollout is not None:
        try:
            await run.engine.cancel(run.rollout, why)
            await run.say(name, f"rollout {run.rollout} cancelled")
        except TinyMLaaSError as exc:
            await run.say(name, f"rollout {run.rollout} not stopped: {exc.message}")
    await run.say(name, why, state="cancelled", error=why, ended_at=now())
    await asyncio.to_thread(run.store.pipelines.set, run.run_id, state="cancelled", error=f"{name}: {why}")


# -- the stages -----------------------------------------------------------------------------------

async def _dataset(run: _Run, report: Callable[[float], None]) -> dict[str, Any]:
    """Pin the dataset version the training will see (locked: it never changes after)."""
    assert run.spec.dataset is not None
    ds, version = await asyncio.to_thread(resolve, run.store, run.spec.dataset)
    await asyncio.to_thread(run.store.datasets.lock, ds.id, version)
    counts = await asyncio.to_thread(run.store.datasets.counts, ds.id, version)
    await run.say("dataset", f"{ds.name} version {version}: {counts.total} samples, locked")
    return {"dataset_id": ds.id, "dataset": ds.name, "version": version, "samples": counts.total}


async def _train(run: _Run, report: Callable[[float], None]) -> dict[str, Any]:
    """The training use case (it converts to int8 too), followed epoch by epoch."""
    pinned = run.made["dataset"]
    req = run.spec.training(f"{pinned['dataset']}:{pinned['version']}")
    store, settings = run.store, run.engine.settings
    training = await asyncio.to_thread(start_training, store, settings, run.runner, req)
    await run.say("train", f"training {training.id} started", job_id=training.job_id)
    await run.follow("train", [training.job_id], report)
    done = await asyncio.to_thread(store.datasets.training, training.id)
    assert done.model_id is not None
    for e in done.epochs:  # every epoch, also those that passed between two looks
        val = f", val accuracy {e.val_accuracy:.4f}" if e.val_accuracy is not None else ""
        await run.say("train", f"epoch {e.epoch} of {len(done.epochs)}: loss {e.loss:.4f}, accuracy "
                               f"{e.accuracy:.4f}{val}")
    model = await asyncio.to_thread(store.model, done.model_id)
    return {"training_id": training.id, "model_id": model.id, "model": f"{model.name}:{model.version}"}


async def _quantize(run: _Run, report: Callable[[float], None]) -> dict[str, Any]:
    """The int8 model's gate: its accuracy next to the float model's on the test split."""
    store = run.store
    model = await asyncio.to_thread(store.model, run.made["train"]["model_id"])
    lineage = await asyncio.to_thread(store.datasets.lineage, model.id)
    accuracy = {variant: m.accuracy for variant, m in lineage.metrics.items()}
    made = {"model_id": model.id, "model": f"{model.name}:{model.version}", "type": "int8",
            "sha256": model.sha256, "bytes": model.bytes, "accuracy": accuracy}
    if "int8" not in accuracy or "float" not in accuracy:
        await run.say("quantize", "no test split to compare int8 with float on")
        return made
    drop = accuracy["float"] - accuracy["int8"]
    await run.say("quantize", f"int8 {accuracy['int8']:.2%}, float {accuracy['float']:.2%} on the test split")
    gate = (run.spec.quantize.max_accuracy_drop if run.spec.quantize else None)
    if gate is not None and drop > gate:
        raise InvalidInput(f"int8 accuracy {accuracy['int8']:.2%} is {drop:.2%} below float "
                           f"({accuracy['float']:.2%}); the pipeline allows {gate:.2%}")
    return {**made, "drop": round(drop, 6)}


async def _compile(run: _Run, report: Callable[[float], None]) -> dict[str, Any]:
    """A build (compile + OS image) per target, as jobs side by side."""
    store, engine = run.store, run.engine
    model_id = run.made["quantize"]["model_id"] if "quantize" in run.made else \
        (await asyncio.to_thread(store.model, run.spec.model or "")).id
    builds: dict[str, str] = {}
    jobs = []
    for t in run.spec.compile.targets:
        build, job = await asyncio.to_thread(functools.partial(
            start_build, store, engine.settings, run.runner, model=model_id, target=t.board,
            compiler=t.compiler, options=t.options, builder=t.builder, version=run.spec.compile.version,
            toolchain=t.toolchain))
        builds[t.board] = build.id
        jobs.append(job.id)
        await run.say("compile", f"build {build.id} for {t.board} started", job_id=job.id)
    await asyncio.to_thread(lambda: store.pipelines.stage(run.run_id, "compile",
                                                          artifacts={"model_id": model_id, "builds": builds}))
    await run.follow("compile", jobs, report)
    return {"model_id": model_id, "version": run.spec.compile.version, "builds": builds}


async def _deploy(run: _Run, report: Callable[[float], None]) -> dict[str, Any]:
    """A rollout of the builds to the group, followed until it ends (a paused rollout waits for its
    operator, as any rollout does)."""
    store = run.store
    spec = run.spec.rollout(list(run.made["compile"]["builds"].values()))
    creator = (await asyncio.to_thread(store.pipelines.get, run.run_id)).created_by
    rollout = await run.engine.create(spec, download_base=run.download_base, created_by=creator)
    run.rollout = rollout.id
    await run.say("deploy", f"rollout {rollout.id} to group '{rollout.group}' started: "
                  f"{rollout.devices} device(s) in {len(rollout.waves)} wave(s)", job_id=rollout.job_id,
                  artifacts={"rollout_id": rollout.id})
    seen = ""
    while True:
        r = await asyncio.to_thread(store.rollouts.get, rollout.id)
        now_says = f"rollout {r.state.replace('_', ' ')}: {r.reason}" if r.reason else ""
        if now_says and now_says != seen:
            seen = now_says
            await run.say("deploy", now_says)
        done = sum(n for w in r.waves for s, n in w.counts.items() if s != "pending" and s != "running")
        report(done / max(r.devices, 1))
        if r.state in FINAL_STATES:
            break
        await asyncio.sleep(POLL_S)
    if r.state != "succeeded":
        raise TinyMLaaSError(f"rollout {r.id} {r.state}: {r.reason}")
    return {"rollout_id": r.id, "group": r.group, "devices": r.devices, "reason": r.reason}


STAGES: dict[str, Callable[[_Run, Callable[[float], None]], Awaitable[dict[str, Any]]]] = {
    "dataset": _dataset, "train": _train, "quantize": _quantize, "compile": _compile, "deploy": _deploy}

