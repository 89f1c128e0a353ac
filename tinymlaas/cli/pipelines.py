"""``tinymlaas pipeline validate|run|status|rerun``: an ML pipeline file against a running service
(URL and token as for the operator's other commands); ``validate --offline`` checks what needs no
service. A file's problems are one line each, ``FILE:LINE:COLUMN: message``, on stderr (exit 2);
``--follow`` shows a Rich bar per stage until the run ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tinymlaas.cli.client import ServiceClient, ServiceUnreachable, problem, resolve
from tinymlaas.cli.fleet import TokenOpt, UrlOpt
from tinymlaas.cli.main import JsonOpt, err, out, print_json
from tinymlaas.config import get_settings
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.pipelines.models import PipelineSource
from tinymlaas.pipelines.spec import PipelineInvalid

pipeline_app = typer.Typer(no_args_is_help=True, help="ML pipelines from a YAML file: dataset -> train -> "
                                                      "quantize -> compile -> deploy.")
FileArg = Annotated[Path, typer.Argument(help="the pipeline's YAML file")]
FollowOpt = Annotated[bool, typer.Option("--follow", help="a bar per stage until the run ends")]
POLL_S = 1.0


@pipeline_app.callback()
def _connect(ctx: typer.Context, url: UrlOpt = None, token: TokenOpt = None) -> None:
    ctx.obj = (url, token)


def _client(ctx: typer.Context) -> ServiceClient:
    url, token = ctx.obj or (None, None)
    return ServiceClient(resolve(url, token))


def _source(path: Path) -> PipelineSource:
    try:
        return PipelineSource(source=path.read_text(), filename=str(path))
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def _say_problems(errors: list[dict[str, Any]], filename: str) -> None:
    """One line per problem, as compilers print them; exit 2 (invalid input)."""
    for e in errors:
        err.print(f"{filename}:{e['line']}:{e['column']}: {e['message']}", markup=False, highlight=False,
                  soft_wrap=True)
    raise typer.Exit(InvalidInput.exit_code)


def _send(api: ServiceClient, path: str, source: PipelineSource) -> Any:
    """POST a pipeline file; a refusal that lists the file's problems prints each on its line."""
    try:
        reply = api.http.post(path, json=source.model_dump())
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"no TinyMLaaS service answers at {api.url}: {exc}") from None
    if reply.status_code == 422:
        errors = (reply.json().get("details") or {}).get("errors")
        if errors:
            _say_problems(errors, source.filename)
    if reply.status_code >= 400:
        raise problem(reply)
    return reply.json()


@pipeline_app.command("validate")
def validate(
    ctx: typer.Context,
    file: FileArg,
    offline: Annotated[bool, typer.Option(
        "--offline", help="no service: the file, boards and compilers only (not datasets, models, fit, "
                          "groups)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a pipeline file; every problem is named with its line."""
    source = _source(file)
    if offline:
        from tinymlaas.services.pipelines import validate as check

        try:
            plan = check(None, get_settings(), source)[1].model_dump(mode="json")
        except PipelineInvalid as exc:
            _say_problems([p.model_dump() for p in exc.problems], source.filename)
    else:
        with _client(ctx) as api:
            plan = _send(api, "/pipelines/validate", source)
    if as_json:
        print_json(plan)
        return
    where = " (offline: datasets, models, fit and groups not checked)" if offline else ""
    group = f"; group '{plan['group']}' ({len(plan['devices'])} devices)" if plan["group"] and not offline \
        else ""
    out.print(f"{file}: pipeline '{plan['name']}' is valid{where}: {' -> '.join(plan['stages'])}; "
              f"targets {', '.join(plan['targets'])}{group}")


@pipeline_app.command("run")
def run(ctx: typer.Context, file: FileArg, follow: FollowOpt = False, as_json: JsonOpt = False) -> None:
    """Validate and run a pipeline file (its problems refused first, each on its line)."""
    source = _source(file)
    with _client(ctx) as api:
        r = _send(api, "/pipelines/runs", source)
        if follow:
            r = _follow(api, r)
    _done(r, follow, as_json)


@pipeline_app.command("rerun")
def rerun(ctx: typer.Context, run_id: str, follow: FollowOpt = False, as_json: JsonOpt = False) -> None:
    """Run a failed run again from the stage that failed (the stages that succeeded are kept)."""
    with _client(ctx) as api:
        r = api.call("POST", f"/pipelines/runs/{run_id}/rerun")
        if follow:
            r = _follow(api, r)
    _done(r, follow, as_json)


@pipeline_app.command("cancel")
def cancel(ctx: typer.Context, run_id: str, as_json: JsonOpt = False) -> None:
    """Stop a running run in the stage it is in ('rerun' goes on from there later)."""
    with _client(ctx) as api:
        api.call("POST", f"/pipelines/runs/{run_id}/cancel")
        deadline = time.monotonic() + 60
        r = api.call("GET", f"/pipelines/runs/{run_id}")
        while r["state"] == "running" and time.monotonic() < deadline:  # the stage stops its work
            time.sleep(POLL_S)
            r = api.call("GET", f"/pipelines/runs/{run_id}")
    if as_json:
        print_json(r)
        return
    out.print(f"pipeline run {r['id']} {r['state']}: {r['error']} "
              f"('tinymlaas pipeline rerun {r['id']}' to go on from there)")


def _done(r: dict[str, Any], followed: bool, as_json: bool) -> None:
    if as_json:
        print_json(r)
    elif not followed:
        out.print(f"pipeline run {r['id']} (attempt {r['attempt']}) started: "
                  f"{' -> '.join(s['name'] for s in r['stages'])}")
    if followed and r["state"] in ("failed", "cancelled"):
        raise TinyMLaaSError(f"pipeline run {r['id']} {r['state']}: {r['error']} "
                             f"('tinymlaas pipeline rerun {r['id']}' to go on from there)")
    if followed and not as_json:
        out.print(f"pipeline run {r['id']} succeeded: {_artifacts(r)}")


def _artifacts(r: dict[str, Any]) -> str:
    made = {s["name"]: s["artifacts"] for s in r["stages"]}
    parts = []
    if "train" in made:
        parts.append(f"model {made['train'].get('model')}")
    if "compile" in made:
        parts.append("builds " + ", ".join(f"{b}={i}" for b, i in made["compile"].get("builds", {}).items()))
    if "deploy" in made:
        parts.append(f"rollout {made['deploy'].get('rollout_id')}")
    return "; ".join(parts)


def _follow(api: ServiceClient, r: dict[str, Any]) -> dict[str, Any]:
    """A bar per stage, from the run and its job's progress, until the run ends."""
    names = [s["name"] for s in r["stages"]]
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, disable=not err.is_terminal) as bar:
        tasks: list[TaskID] = [bar.add_task(n, total=1.0) for n in names]
        while True:
            r = api.call("GET", f"/pipelines/runs/{r['id']}")
            overall = api.call("GET", f"/jobs/{r['job_id']}")["progress"] * len(names)
            for i, (task, s) in enumerate(zip(tasks, r["stages"], strict=True)):
                done = 1.0 if s["state"] == "succeeded" else min(max(overall - i, 0.0), 1.0)
                last = s["log"][-1].split(" ", 1)[-1] if s["log"] else ""
                bar.update(task, completed=done, description=f"{s['name']} ({s['state']}) {last[:60]}")
            if r["state"] != "running":
                return r
            time.sleep(POLL_S)


@pipeline_app.command("status")
def status(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="a run; none: the newest runs")] = None,
    log: Annotated[bool, typer.Option("--log", help="every stage's whole log")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A run's stages (state, jobs, artifacts, error), or the newest runs."""
    with _client(ctx) as api:
        found = api.call("GET", f"/pipelines/runs/{run_id}") if run_id else api.call("GET", "/pipelines/runs")
    if as_json:
        print_json(found)
        return
    if run_id is None:
        table = Table("run", "name", "state", "attempt", "stages", "created", title="pipeline runs")
        for r in found:
            table.add_row(r["id"], r["name"], r["state"], str(r["attempt"]),
                          " ".join(f"{s['name']}:{s['state']}" for s in r["stages"]), r["created_at"][:19])
        out.print(table)
        return
    r = found
    table = Table("stage", "state", "attempt", "jobs", "artifacts", "error / last log line",
                  title=f"pipeline run {r['id']} '{r['name']}': {r['state']} (attempt {r['attempt']})")
    for s in r["stages"]:
        made = ", ".join(f"{k}={v}" for k, v in s["artifacts"].items() if not isinstance(v, dict | list))
        builds = s["artifacts"].get("builds")
        made += (", " if made and builds else "") + (", ".join(f"{b}: {i}" for b, i in builds.items())
                                                     if builds else "")
        table.add_row(s["name"], s["state"], str(s["attempt"]), " ".join(s["job_ids"]), made,
                      s["error"] or (s["log"][-1] if s["log"] else ""))
    out.print(table)
    if log:
        for s in r["stages"]:
            for line in s["log"]:
                out.print(f"{s['name']}: {line}", markup=False, highlight=False)
