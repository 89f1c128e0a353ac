"""Compare cloud, TinyML and hybrid inference for a model version on a board: every input of the
cost model (:mod:`tinymlaas.cost.model`) filled from what the project measured, else from its
documented default (:mod:`tinymlaas.cost.figures`), else refused; what the user gives replaces
either. Each figure carries its source and reference, and so does each accuracy.

Measured figures and where they come from:

* instructions per inference: the newest profile of the model (its job's result) or on-device
  evaluation that counted them on the board's emulator;
* input and output bytes: the int8 model's tensors;
* update bytes: the newest build of the model for the board (the flash image an MCU takes by FOTA;
  an x86 OS image), else the profile's linked flash size, else the model file;
* cloud compute seconds: the mean interpreter time of the escalations the model's cloud endpoint
  answered, else the float model timed in this service's TFLM interpreter;
* escalation rate and accuracies: the newest hybrid evaluation (the device's count when it ran on
  one), else the lineage's float and int8 accuracies without a hybrid.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from functools import cache

import numpy as np
from pydantic import ValidationError

from tinymlaas.config import Settings
from tinymlaas.cost.figures import CORE_ENERGY, DEFAULTS, core_energy
from tinymlaas.cost.model import LABELS, Inputs, OptionName, evaluate, input_units
from tinymlaas.cost.models import Accuracy, Comparison, CostRequest, Figure, InputSpec, Source
from tinymlaas.datasets.models import Variant
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.models import Board, Model
from tinymlaas.store import Store
from tinymlaas.targets import get_board

MEASURED_FROM = {
    "instructions_per_inference": "the emulator's count: a profile of the model (POST /profiles) or an "
                                  "evaluation of it on the board (POST /evaluations with a target)",
    "energy_per_instruction_j": "the board's Cortex-M family: a datasheet figure (see core_energy)",
    "cloud_compute_seconds": "the model's cloud endpoint: mean interpreter time per escalation it answered; "
                             "else the float model timed in this service's TFLM interpreter",
    "input_bytes": "the int8 model's input tensor",
    "output_bytes": "the int8 model's output tensor",
    "update_bytes": "the newest build of the model for the board (flash image, or OS image), else the "
                    "profile's linked flash size, else the model file",
    "escalation_rate": "the newest hybrid evaluation of the model (POST /hybrid/evaluations): the device's "
                       "count when it ran on one",
}


def input_specs() -> list[InputSpec]:
    specs = []
    for name, (unit, description) in input_units().items():
        d = DEFAULTS.get(name)
        specs.append(InputSpec(
            name=name, unit=unit, description=description, measured_from=MEASURED_FROM.get(name),
            default=Figure(value=d.value, unit=unit, source=Source.default, ref=d.ref) if d else None))
    return specs


def core_figures() -> dict[str, Figure]:
    """Energy per instruction per Cortex-M family, with the datasheet each is read from."""
    return {family: Figure(value=fig.joules_per_instruction, unit="J", source=Source.default,
                           ref=fig.reference()) for family, fig in CORE_ENERGY.items()}


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _instructions(store: Store, model: Model, board: str | None) -> tuple[str, Figure, bool | None] | None:
    """The newest instruction count of the model (on ``board`` if named): (board, figure, fits)."""
    found: list[tuple[datetime, str, Figure, bool | None]] = []
    for job_id, when, profile in store.cost.profiles(model.id):
        for row in profile.boards:
            if row.instructions and (board is None or row.board == board):
                found.append((when, row.board, Figure(
                    value=row.instructions, unit="instructions", source=Source.measured,
                    ref=f"profile job {job_id} ({_when(when)}): one inference on {row.board} under "
                        f"{row.emulator}"), row.fits))
    for e in store.datasets.evaluations(model.id):
        if e.device is not None and e.device.instructions and (board is None or e.target == board):
            found.append((e.created_at, str(e.target), Figure(
                value=e.device.instructions, unit="instructions", source=Source.measured,
                ref=f"evaluation {e.id} ({_when(e.created_at)}): median of {e.device.samples} inferences on "
                    f"{e.target} under {e.device.emulator}"), True))
    if not found:
        return None
    _, name, figure, fits = max(found, key=lambda f: f[0])
    return name, figure, fits


def _update_bytes(store: Store, model: Model, board: Board) -> Figure:
    builds = [b for b in store.builds() if b.model_id == model.id and b.target == board.name and b.firmware]
    if builds:
        fw = builds[0].firmware
        assert fw is not None
        if "flash" in fw.sizes:
            flash = fw.sizes["flash"]
            return Figure(value=flash, unit="B", source=Source.measured,
                          ref=f"build {builds[0].id}: the firmware's flash image, {flash:,} B (FOTA)")
        size = store.artifacts.get(fw.image_sha256).stat().st_size
        return Figure(value=size, unit="B", source=Source.measured,
                      ref=f"build {builds[0].id}: the OS image {fw.image}, {size:,} B (FOTA)")
    for job_id, _, profile in store.cost.profiles(model.id):
        row = next((r for r in profile.boards if r.board == board.name and r.flash_bytes), None)
        if row is not None and row.flash_bytes:
            return Figure(value=row.flash_bytes, unit="B", source=Source.measured,
                          ref=f"profile job {job_id}: the firmware linked for {board.name}, "
                              f"{row.flash_bytes:,} B of flash (FOTA)")
    return Figure(value=model.bytes, unit="B", source=Source.measured,
                  ref=f"no build for {board.name} yet: the model file, {model.bytes:,} B "
                      "(a model-only update)")


@cache
def _timed(blob: bytes, runs: int = 25) -> float:
    """Median seconds of one inference of a model in this process's TFLM (on zeros)."""
    from tinymlaas.edge.tflm import Tflm

    it = Tflm(blob)
    zeros = np.zeros(it.input["shape"], dtype=it.input["dtype"])
    it.invoke(zeros)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke(zeros)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cloud_seconds(store: Store, model: Model) -> Figure:
    for ep in store.cost.endpoints(model.id):
        if ep.served:
            mean = ep.compute_us / ep.served / 1e6
            return Figure(value=mean, unit="s", source=Source.measured,
                          ref=f"cloud endpoint {ep.id}: {ep.compute_us / ep.served:,.0f} us mean "
                              f"interpreter time over the {ep.served:,} escalations it answered")
    try:
        variants = store.datasets.lineage(model.id).variants
    except NotFound:
        variants = {}
    variant = Variant.float if Variant.float in variants else Variant.int8
    blob = store.artifacts.get(variants.get(variant, model.sha256)).read_bytes()
    return Figure(value=_timed(blob), unit="s", source=Source.measured,
                  ref=f"the {variant.value} model timed in this service's TFLM interpreter (median of "
                      "25 runs on zeros, this host; a cloud's runtime is faster)")


def _hybrid(store: Store, model: Model, threshold: float | None
            ) -> tuple[Figure | None, dict[OptionName, Accuracy], str | None]:
    """The escalation rate and the options' accuracies, and a note when there is no hybrid."""
    acc: dict[OptionName, Accuracy] = {}
    runs = store.cost.evaluations(model.id, threshold, limit=1)
    if runs:
        e = runs[0]
        where = (f"on device {e.device.device} ({e.device.escalated} of {e.samples} escalated by its count; "
                 f"the service answered {e.device.served})" if e.device else
                 f"in process ({e.escalated} of {e.samples} below the threshold)")
        split = f"{e.split.value} split of dataset version {e.dataset_version}"
        rate = Figure(value=e.escalation_rate, unit="fraction", source=Source.measured,
                      ref=f"hybrid evaluation {e.id} ({_when(e.created_at)}), threshold {e.threshold:g}, the "
                          f"{split}: {where}")
        acc["cloud"] = Accuracy(value=e.accuracy["cloud"], ref=f"float model, hybrid evaluation {e.id}")
        acc["tinyml"] = Accuracy(value=e.accuracy["local"], ref=f"int8 model, hybrid evaluation {e.id}")
        acc["hybrid"] = Accuracy(value=e.device.accuracy if e.device else e.accuracy["hybrid"],
                                 ref=f"hybrid evaluation {e.id}, {where.split(' (')[0]}")
        return rate, acc, None
    try:
        metrics = store.datasets.lineage(model.id).metrics
    except NotFound:
        metrics = {}
    pairs: tuple[tuple[OptionName, str], ...] = (("cloud", "float"), ("tinyml", "int8"))
    for option, variant in pairs:
        if variant in metrics:
            acc[option] = Accuracy(value=metrics[variant].accuracy,
                                   ref=f"{variant} model on its dataset's test split (lineage)")
    at = f" at threshold {threshold:g}" if threshold is not None else ""
    return None, acc, (f"no hybrid: no hybrid evaluation of the model{at} measured an escalation rate "
                       "(POST /hybrid/evaluations), and none was given")


def _figures(store: Store, settings: Settings, model: Model, req: CostRequest
             ) -> tuple[Board, dict[str, Figure], dict[OptionName, Accuracy], list[str]]:
    units = input_units()
    unknown = sorted(set(req.inputs) - set(units))
    if unknown:
        raise InvalidInput(f"inputs: no figure named {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(units)})")
    notes: list[str] = []
    fig: dict[str, Figure] = {
        name: Figure(value=d.value, unit=units[name][0], source=Source.default, ref=d.ref)
        for name, d in DEFAULTS.items()}
    measured = _instructions(store, model, req.board)
    name = req.board or (measured[0] if measured else None)
    if name is None:
        raise InvalidInput(f"model '{model.name}:{model.version}' has no measured instruction count on any "
                           "board: name the 'board' and give inputs.instructions_per_inference, or profile "
                           "it first (POST /profiles)")
    board = get_board(settings.targets_dir, name)
    if measured is not None:
        fig["instructions_per_inference"] = measured[1]
        if measured[2] is False:
            notes.append(f"the model does not fit {board.name} (see the profile): give "
                         "tinyml_device_premium, the price of a device it fits")
    energy = core_energy(board.family)
    if energy is not None:
        fig["energy_per_instruction_j"] = Figure(value=energy[0], unit="J", source=Source.default,
                                                 ref=f"{board.name} is a {board.family}: {energy[1]}")
    if model.info.inputs and model.info.outputs:
        i, o = model.info.inputs[0], model.info.outputs[0]
        fig["input_bytes"] = Figure(value=i.nbytes, unit="B", source=Source.measured,
                                    ref=f"the model's input tensor: {i.shape} {i.dtype}")
        fig["output_bytes"] = Figure(value=o.nbytes, unit="B", source=Source.measured,
                                     ref=f"the model's output tensor: {o.shape} {o.dtype}")
    fig["update_bytes"] = _update_bytes(store, model, board)
    fig["cloud_compute_seconds"] = _cloud_seconds(store, model)
    rate, accuracy, note = _hybrid(store, model, req.threshold)
    if rate is not None:
        fig["escalation_rate"] = rate
    elif "escalation_rate" not in req.inputs:
        notes.append(str(note))
    for name, value in req.inputs.items():
        fig[name] = Figure(value=value, unit=units[name][0], source=Source.user, ref="given")
    return board, fig, accuracy, notes


def compare(store: Store, settings: Settings, req: CostRequest) -> Comparison:
    model = store.model(req.model)
    board, fig, accuracy, notes = _figures(store, settings, model, req)
    hybrid = "escalation_rate" in fig
    missing = [n for n in input_units() if n not in fig and not (n == "escalation_rate" and not hybrid)]
    if missing:
        how = {n: MEASURED_FROM.get(n, "give it") for n in missing}
        raise InvalidInput("the comparison lacks " + "; ".join(f"{n} ({w})" for n, w in how.items()))
    try:
        values = {name: f.value for name, f in fig.items()}
        inputs = Inputs(**values | ({} if hybrid else {"escalation_rate": 0}))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"inputs.{err['loc'][0]}: {err['msg']}") from None
    result = evaluate(inputs, hybrid=hybrid)
    by = {o.name: o for o in result.options}
    costs = ", ".join(f"{LABELS[o.name]} {o.per_device_per_year:,.2f}" for o in result.options)
    summary = (f"{LABELS[result.cheapest]} is cheapest for {inputs.fleet_size:,.0f} devices at "
               f"{inputs.inferences_per_day:,g} inferences a day each: USD per device per year {costs}; "
               f"{result.break_even[0].note}.")
    if not hybrid:
        fig.pop("escalation_rate", None)
    return Comparison(model_id=model.id, model=f"{model.name}:{model.version}", board=board.name, inputs=fig,
                      options=list(by.values()), cheapest=result.cheapest, break_even=result.break_even,
                      accuracy=accuracy, summary=summary, notes=notes)
