"""The CFO's commands, on this host's database (as ``datasets``): ``cost compare`` (cloud vs TinyML vs
hybrid for a model version on a board, every figure with its source, a table, JSON and a chart),
``cost inputs`` (the model's inputs, defaults and references) and ``cost hybrid`` (local-only vs
hybrid vs cloud accuracy and the escalation rate on a dataset split, in process)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Column, Table

from tinymlaas.config import get_settings
from tinymlaas.errors import InvalidInput

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tinymlaas.cost.models import Comparison, Figure
    from tinymlaas.store import Store

M = TypeVar("M", bound="BaseModel")

cost_app: typer.Typer = typer.Typer(no_args_is_help=True,
                                   help="Cloud vs TinyML vs hybrid inference: cost, break-even, battery "
                                        "life, accuracy.")



def _given(pairs: list[str]) -> dict[str, float]:
    given = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            given[name.strip()] = float(value.replace("_", ""))
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InvalidInput(f"--set '{pair}': give name=number, e.g. device_unit_cost=12.5")
    return given


def _value(f: Figure) -> str:
    v = f.value
    if v == 0 or 1e-3 <= abs(v) < 1e7:
        return f"{v:,.6g}"
    return f"{v:.4g}"


def _measure(store: Store, model: str, board: str | None) -> None:
    """Profile the model on the board now (compile, build, boot, count) and keep it as a profile job,
    so this comparison and later ones read the count."""
    from tinymlaas.datasets.models import ProfileRequest
    from tinymlaas.images import ensure_all
    from tinymlaas.models import JobState
    from tinymlaas.services.profile import profile_model

    if board is None:
        raise InvalidInput("--measure needs the board (-t): which emulator should count the instructions?")
    settings = get_settings()
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    job = store.new_job("profile")
    store.update_job(job.id, state=JobState.running)
    with progress_bar("profile") as report:
        try:
            result = profile_model(store, settings, ProfileRequest(model=model, targets=[board]), report)
        except BaseException as exc:
            store.update_job(job.id, state=JobState.failed, error=getattr(exc, "message", type(exc).__name__))
            raise
    store.update_job(job.id, state=JobState.succeeded, progress=1.0, step="done",
                     result=result.model_dump(mode="json"))


def _print(c: Comparison) -> None:
    from tinymlaas.cost.model import LABELS

    inputs = Table("value", "unit", "source", "where it came from", title=f"{c.model} on {c.board}: inputs")
    inputs.columns.insert(0, Column("input", no_wrap=True))
    for name, f in c.inputs.items():
        inputs.add_row(name, _value(f), f.unit, f.source.value, f.ref)
    out.print(inputs)
    options = Table("option", "USD/device/year", "USD/million inferences", "USD/fleet/year",
                    "energy/inference", "battery life", "accuracy", title="comparison")
    for o in c.options:
        acc = c.accuracy.get(o.name)
        mark = " (cheapest)" if o.name == c.cheapest else ""
        options.add_row(f"{LABELS[o.name]}{mark}", f"{o.per_device_per_year:,.4f}",
                        f"{o.per_million_inferences:,.4f}", f"{o.fleet_per_year:,.2f}",
                        f"{o.energy_per_inference_j * 1e6:,.2f} uJ", f"{o.battery_life_years:,.2f} years",
                        f"{acc.value:.2%}" if acc else "")
    out.print(options)
    items = Table("option", "line", "USD/device/year", "formula", title="where the costs come from")
    for o in c.options:
        for item in o.items:
            items.add_row(LABELS[o.name], item.name, f"{item.usd_per_device_year:,.6f}", item.formula)
    out.print(items)
    out.print(c.summary)
    for b in c.break_even:
        out.print(f"break-even {LABELS[b.first]} / {LABELS[b.second]}: {b.note}")
    for note in c.notes:
        out.print(f"note: {note}")
    for name, acc in c.accuracy.items():
        out.print(f"accuracy of {LABELS[name]}: {acc.value:.2%} ({acc.ref})")


@cost_app.command("compare")
def compare(
    model: Annotated[str, typer.Argument(help="model version (id, name, name:version)")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="board (default: the newest count's)")
                      ] = None,
    fleet: Annotated[float | None, typer.Option(help="devices in the fleet")] = None,
    per_day: Annotated[float | None, typer.Option(help="inferences per device per day")] = None,
    per_minute: Annotated[float | None, typer.Option(help="inferences per device per minute")] = None,
    threshold: Annotated[float | None, typer.Option(help="the hybrid evaluation's threshold")] = None,
    set_: Annotated[list[str], typer.Option("--set", "-S", help="a figure you give: name=number")] = [],  # noqa: B006
    measure: Annotated[bool, typer.Option(help="profile the model on the board first")] = False,
    chart: Annotated[list[Path], typer.Option(help="write the chart here (.png or .svg)")] = [],  # noqa: B006
    as_json: JsonOpt = False,
) -> None:
    """Cloud vs TinyML vs hybrid: cost per device per year and per million inferences, the cheapest,
    break-even fleet size and rate, battery life; every figure with its source."""
    from tinymlaas.cost.chart import chart as draw
    from tinymlaas.cost.models import CostRequest
    from tinymlaas.services.cost import compare as run

    if per_day is not None and per_minute is not None:
        raise InvalidInput("--per-day or --per-minute: one rate")
    given = _given(set_)
    for name, value in (("fleet_size", fleet), ("inferences_per_day", per_day),
                        ("inferences_per_day", None if per_minute is None else per_minute * 1440)):
        if value is not None:
            given[name] = value
    for path in chart:
        if path.suffix not in (".png", ".svg"):
            raise InvalidInput(f"--chart {path}: a .png or .svg file")
    req = _request(CostRequest, model=model, board=target, threshold=threshold, inputs=given)
    with local_store() as store:
        if measure:
            _measure(store, model, target)
        result = run(store, get_settings(), req)
    for path in chart:
        path.write_bytes(draw(result, "svg" if path.suffix == ".svg" else "png"))
    if as_json:
        print_json(result)
        return
    _print(result)
    for path in chart:
        out.print(f"chart: {path}")


@cost_app.command("inputs")
def inputs(as_json: JsonOpt = False) -> None:
    """The cost model's inputs: unit, meaning, default with its reference, or what measures it; and
    the energy per instruction of each Cortex-M family."""
    from tinymlaas.services.cost import core_figures, input_specs

    specs, cores = input_specs(), core_figures()
    if as_json:
        print_json({"inputs": specs, "core_energy": cores})
        return
    table = Table("unit", "default", "meaning", "default's reference, or what measures it")
    table.columns.insert(0, Column("input", no_wrap=True))
    for s in specs:
        table.add_row(s.name, s.unit, _value(s.default) if s.default else "measured", s.description,
                      s.default.ref if s.default else str(s.measured_from or "given"))
    out.print(table)
    cores_table = Table("family", "J/instruction", "reference", title="energy per instruction")
    for family, f in cores.items():
        cores_table.add_row(family, f"{f.value:.3g}", f.ref)
    out.print(cores_table)


@cost_app.command("hybrid")
def hybrid(
    model: Annotated[str, typer.Argument(help="model version (id, name, name:version)")],
    threshold: Annotated[float | None, typer.Option(help="escalate below this top probability")] = None,
    dataset: Annotated[str | None, typer.Option(help="default: the version it was made from")] = None,
    split: str = "test",
    limit: Annotated[int | None, typer.Option(help="at most this many samples")] = None,
    plot: Annotated[Path | None, typer.Option(help="write accuracy and escalation rate by threshold (PNG)")
                    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Local-only (int8) vs hybrid vs cloud-only (float) accuracy and the escalation rate on a dataset
    split, in process; kept for the cost comparison. Through a device: POST /hybrid/evaluations."""
    from tinymlaas.cost.models import HybridEvaluationRequest
    from tinymlaas.services.hybrid import evaluate_now

    req = _request(HybridEvaluationRequest, model=model, threshold=threshold, dataset=dataset, split=split,
                   limit=limit)
    with local_store() as store, progress_bar("hybrid evaluation") as report:
        result = evaluate_now(store, req, report)
        if plot is not None and result.plot_sha256:
            plot.write_bytes(store.artifacts.get(result.plot_sha256).read_bytes())
    if as_json:
        print_json(result)
        return
    table = Table("threshold", "escalation rate", "hybrid accuracy",
                  title=f"{model}: {result.samples} {result.split.value} samples; TinyML only "
                        f"{result.accuracy['local']:.2%}, cloud only {result.accuracy['cloud']:.2%}")
    for p in result.sweep:
        mark = " <" if p.threshold == result.threshold else ""
        table.add_row(f"{p.threshold:g}{mark}", f"{p.escalation_rate:.2%}", f"{p.accuracy:.2%}")
    out.print(table)
    out.print(f"hybrid evaluation {result.id}: at {result.threshold:g}, {result.escalated} of "
              f"{result.samples} escalated ({result.escalation_rate:.2%}), hybrid accuracy "
              f"{result.accuracy['hybrid']:.2%}")
    if plot is not None:
        out.print(f"plot: {plot}")


def _request(cls: type[M], **fields: Any) -> M:
    """A request record from options; a bad value is one line naming its option."""
    from pydantic import ValidationError

    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise InvalidInput(f"--{option}: {first['msg']}") from None


# The shared CLI helpers, imported last (see tinymlaas.cli.datasets): main imports this module at its end.
from tinymlaas.cli.main import JsonOpt, local_store, out, print_json, progress_bar  # noqa: E402
