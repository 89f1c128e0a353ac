"""The operator's commands, against a running service over HTTP: ``devices``, ``groups``,
``rollouts``, ``deployments``, ``jobs``, ``toolchains`` and ``service`` (login).

Every sub-command takes ``--url`` and ``--token`` (else ``TINYMLAAS_URL``/``TINYMLAAS_TOKEN``,
else the client file that ``tinymlaas service login`` writes, mode 600); every table has
``--json``; a rollout is followed with a Rich bar per wave.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tinymlaas.cli.client import ClientEnvironment, ServiceClient, resolve, write_client_file
from tinymlaas.errors import Conflict, InvalidInput, TinyMLaaSError

service_app = typer.Typer(no_args_is_help=True, help="Which service the commands below talk to.")
devices_app = typer.Typer(no_args_is_help=True, help="The device registry (and bridges) of a service.")
groups_app = typer.Typer(no_args_is_help=True, help="Groups of devices: a tag query or a list.")
rollouts_app = typer.Typer(no_args_is_help=True, help="Rollouts of a build to a group, in waves.")
deployments_app = typer.Typer(no_args_is_help=True, help="Updates of one device (FOTA, SOTA).")
jobs_app = typer.Typer(no_args_is_help=True, help="The service's long work: state, step, progress.")
toolchains_app = typer.Typer(no_args_is_help=True, help="Partners' builder images registered at run time.")

APPS = {"service": service_app, "devices": devices_app, "groups": groups_app, "rollouts": rollouts_app,
        "deployments": deployments_app, "jobs": jobs_app, "toolchains": toolchains_app}


def register(app: typer.Typer) -> None:
    """Add these commands to the ``tinymlaas`` app."""
    for name, sub in APPS.items():
        app.add_typer(sub, name=name)


UrlOpt = Annotated[str | None, typer.Option("--url", help="the service; else TINYMLAAS_URL, else the "
                                                          "client file ('tinymlaas service login')")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="an API token; else TINYMLAAS_TOKEN, else "
                                                              "the client file")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (kept with it)")]


def _connect(ctx: typer.Context, url: UrlOpt = None, token: TokenOpt = None) -> None:
    ctx.obj = (url, token)


for _sub in APPS.values():
    _sub.callback()(_connect)


@contextmanager
def _api(ctx: typer.Context) -> Iterator[ServiceClient]:
    url, token = ctx.obj or (None, None)
    with ServiceClient(resolve(url, token)) as client:
        yield client


def _table(*columns: str, title: str | None = None) -> Table:
    return Table(*columns, title=title)


def _yes(value: Any) -> str:
    return "yes" if value else ""


# -- service ---------------------------------------------------------------------------------------

@service_app.command("login")
def login(ctx: typer.Context) -> None:
    """Check the URL and token (--url/--token, or the environment) and keep them in the client file
    (mode 600), so the other commands need neither."""
    url, token = ctx.obj or (None, None)
    config = resolve(url, token)
    if not config.token:
        raise InvalidInput("give --token (an API token: 'tinymlaas users token NAME' on the service's host)")
    with ServiceClient(config) as api:
        me = api.call("GET", "/auth/me")
    path = ClientEnvironment().client_file
    write_client_file(path, config.url, config.token)
    out.print(f"{config.url}: signed in as {me['name']} ({me['role']}); kept in {path} (mode 600)")


@service_app.command("whoami")
def whoami(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Who the token is, on which service."""
    with _api(ctx) as api:
        me = api.call("GET", "/auth/me")
        url = api.url
    if as_json:
        print_json({"url": url, **me})
        return
    out.print(f"{me['name']} ({me['role']}) on {url}")


# -- devices ---------------------------------------------------------------------------------------

@devices_app.command("list")
def devices_list(
    ctx: typer.Context,
    board: Annotated[str | None, typer.Option(help="of this board")] = None,
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="with this tag (repeat: all of them)")] = [],  # noqa: B006
    online: Annotated[bool | None, typer.Option("--online/--offline", help="connected now, or not")] = None,
    firmware: Annotated[str | None, typer.Option(help="running this firmware version")] = None,
    model: Annotated[str | None, typer.Option(help="running this model (SHA-256 prefix or name)")] = None,
    state: Annotated[str | None, typer.Option(help="expected, active, pending or decommissioned")] = None,
    bridge: Annotated[str | None, typer.Option(help="behind this bridge")] = None,
    all_: Annotated[bool, typer.Option("--all", help="decommissioned ones too")] = False,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Registered devices matching every filter, by endpoint."""
    params = {"board": board, "tags": tag, "online": online, "firmware": firmware, "model": model,
              "state": state, "bridge": bridge, "include_decommissioned": all_ or None,
              "limit": limit, "offset": offset}
    with _api(ctx) as api:
        found, total = api.page("/devices", {k: v for k, v in params.items() if v is not None})
    if as_json:
        print_json(found)
        return
    table = _table("endpoint", "name", "board", "tags", "state", "online", "firmware", "model", "last seen",
                   title=f"{len(found)} of {total} device(s)")
    for d in found:
        table.add_row(d["endpoint"], d["name"], d["board"] or "", ",".join(d["tags"]), d["state"],
                      _yes(d["online"]), d["firmware_version"] or "", (d["model_sha256"] or "")[:12],
                      (d["last_seen"] or "")[:19].replace("T", " "))
    out.print(table)


@devices_app.command("show")
def devices_show(ctx: typer.Context, endpoint: str, as_json: JsonOpt = False) -> None:
    """A device's record and, when it is online, what it reports now."""
    with _api(ctx) as api:
        detail = api.call("GET", f"/devices/{endpoint}")
    if as_json:
        print_json(detail)
        return
    d, caps = detail["device"], detail["capabilities"] or {}
    table = _table("field", "value", title=f"device {endpoint}")
    for key in ("name", "board", "state", "online", "location", "notes", "bridge", "health",
                "firmware_version", "model_sha256", "build_id", "last_seen", "address"):
        value = d.get(key)
        table.add_row(key, "" if value is None else str(value))
    table.add_row("tags", ",".join(d["tags"]))
    for key in ("cpu", "runtime", "ram_bytes", "flash_bytes", "model_name"):
        if caps.get(key) is not None:
            table.add_row(f"reports {key}", str(caps[key]))
    if detail.get("capabilities_error"):
        table.add_row("capabilities", detail["capabilities_error"])
    out.print(table)


@devices_app.command("add")
def devices_add(
    ctx: typer.Context,
    endpoint: str,
    name: Annotated[str, typer.Option(help="what people call it")] = "",
    board: Annotated[str | None, typer.Option(help="the board it is")] = None,
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="a label (repeat)")] = [],  # noqa: B006
    location: Annotated[str, typer.Option()] = "",
    notes: Annotated[str, typer.Option()] = "",
    credentials: Annotated[Path | None, typer.Option(
        help="write its credentials (shown once) to this file, mode 600, instead of printing them")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pre-register a device before it first connects; it gets its credentials now."""
    with _api(ctx) as api:
        made = api.call("POST", "/devices", json={"endpoint": endpoint, "name": name, "board": board,
                                                  "tags": tag, "location": location, "notes": notes})
    secret = made.get("credentials")
    if credentials is not None and secret is not None:
        _write_secret(credentials, secret)
        made["credentials"] = f"written to {credentials}"
    if as_json:
        print_json(made)
        return
    out.print(f"registered '{endpoint}' ({made['device']['state']})")
    if isinstance(made.get("credentials"), dict):
        out.print("its credentials (shown once):")
        print_json(made["credentials"])
    elif made.get("credentials"):
        out.print(f"its credentials: {made['credentials']}")


def _write_secret(path: Path, data: dict[str, Any]) -> None:
    import json
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)


@devices_app.command("edit")
def devices_edit(
    ctx: typer.Context,
    endpoint: str,
    name: Annotated[str | None, typer.Option()] = None,
    board: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="its tags (replaced; repeat)")] = None,
    location: Annotated[str | None, typer.Option()] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change what the registry says about a device (only the options given)."""
    patch = {k: v for k, v in {"name": name, "board": board, "tags": tag, "location": location,
                               "notes": notes}.items() if v is not None}
    with _api(ctx) as api:
        d = api.call("PATCH", f"/devices/{endpoint}", json=patch)
    if as_json:
        print_json(d)
        return
    out.print(f"'{endpoint}': {', '.join(sorted(patch)) or 'nothing'} changed")


@devices_app.command("approve")
def devices_approve(ctx: typer.Context, endpoint: str) -> None:
    """Let in a device that joined unannounced and is held."""
    with _api(ctx) as api:
        api.call("POST", f"/devices/{endpoint}/approve")
    out.print(f"'{endpoint}' approved: it joins at its next try")


@devices_app.command("decommission")
def devices_decommission(ctx: typer.Context, endpoint: str, reason: ReasonOpt = "") -> None:
    """Take a device out of service: its credentials are revoked; record and history stay."""
    with _api(ctx) as api:
        api.call("POST", f"/devices/{endpoint}/decommission", json={"reason": reason})
    out.print(f"'{endpoint}' decommissioned")


@devices_app.command("delete")
def devices_delete(ctx: typer.Context, endpoint: str,
                   yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Forget a device (credentials revoked, session ended); its history stays."""
    if not yes and not typer.confirm(f"forget '{endpoint}'?"):
        raise typer.Abort()
    with _api(ctx) as api:
        api.call("DELETE", f"/devices/{endpoint}")
    out.print(f"'{endpoint}' deleted")


@devices_app.command("infer")
def devices_infer(
    ctx: typer.Context, endpoint: str,
    values: Annotated[list[str], typer.Option(
        "--values", "-v", help="one input tensor: [NAME=]v1,v2,... (repeat for each input, in the model's "
                               "order or by name)")],
    raw: Annotated[bool, typer.Option("--raw", help="the numbers are raw tensor values, not real "
                                                    "values to quantize")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One inference on the device, through the service; every output tensor."""
    inputs = []
    for given in values:
        name, _, numbers = given.rpartition("=")
        try:
            tensor = [float(v) for v in numbers.split(",") if v.strip()]
        except ValueError:
            raise InvalidInput(f"--values {given!r}: give [NAME=]v1,v2,... with numbers") from None
        inputs.append({**({"name": name} if name else {}), ("input" if raw else "values"): tensor})
    with _api(ctx) as api:
        report = api.call("POST", f"/devices/{endpoint}/infer", json={"inputs": inputs})
    if as_json:
        print_json(report)
        return
    table = _table("output", "raw", "values", title=f"inference {report['count']} on {endpoint}")
    for t in report["outputs"]:
        table.add_row(t["name"], " ".join(map(str, t["raw"])),
                      " ".join(f"{v:.6g}" for v in t["values"] or []))
    out.print(table)
    said = [f"{report['latency_us']:,} µs" if report.get("latency_us") is not None else "",
            f"{report['instructions']:,} instructions" if report.get("instructions") else ""]
    if any(said):
        out.print(", ".join(s for s in said if s))


@devices_app.command("history")
def devices_history(ctx: typer.Context, endpoint: str, limit: int = 50, as_json: JsonOpt = False) -> None:
    """What happened to a device, newest first."""
    with _api(ctx) as api:
        events = api.call("GET", f"/devices/{endpoint}/history", params={"limit": limit})
    if as_json:
        print_json(events)
        return
    table = _table("at", "what", "detail", title=f"history of {endpoint}")
    for e in events:
        table.add_row(e["at"][:19].replace("T", " "), e["kind"], e["detail"])
    out.print(table)


@devices_app.command("bridges")
def devices_bridges(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Bridges and the boards behind each, with their health."""
    with _api(ctx) as api:
        bridges = api.call("GET", "/bridges")
    if as_json:
        print_json(bridges)
        return
    table = _table("bridge", "online", "board endpoint", "board", "health", "online ")
    for b in bridges:
        for i, d in enumerate(b["devices"] or [{}]):
            table.add_row(b["endpoint"] if i == 0 else "", _yes(b["online"]) if i == 0 else "",
                          d.get("endpoint", ""), d.get("board") or "", d.get("health") or "",
                          _yes(d.get("online")))
    out.print(table)


# -- groups ----------------------------------------------------------------------------------------

@groups_app.command("list")
def groups_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Groups and what makes them."""
    with _api(ctx) as api:
        groups = api.call("GET", "/groups")
    if as_json:
        print_json(groups)
        return
    table = _table("group", "tags", "board", "devices", "description")
    for g in groups:
        table.add_row(g["name"], ",".join(g["tags"]), g["board"] or "", ",".join(g["devices"]),
                      g["description"])
    out.print(table)


@groups_app.command("show")
def groups_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """A group's devices now."""
    with _api(ctx) as api:
        members = api.call("GET", f"/groups/{name}/devices")
    if as_json:
        print_json(members)
        return
    table = _table("endpoint", "board", "online", "firmware", title=f"group {name}: {len(members)} device(s)")
    for d in members:
        table.add_row(d["endpoint"], d["board"] or "", _yes(d["online"]), d["firmware_version"] or "")
    out.print(table)


@groups_app.command("create")
def groups_create(
    ctx: typer.Context,
    name: str,
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="devices with every one of these tags")] = [],  # noqa: B006
    board: Annotated[str | None, typer.Option(help="and of this board")] = None,
    device: Annotated[list[str], typer.Option("--device", "-d", help="or these devices (repeat)")] = [],  # noqa: B006
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """A group by tag query (and board), or by an explicit list of devices."""
    with _api(ctx) as api:
        api.call("POST", "/groups", json={"name": name, "tags": tag, "board": board, "devices": device,
                                          "description": description})
    out.print(f"group '{name}' created")


@groups_app.command("delete")
def groups_delete(ctx: typer.Context, name: str) -> None:
    with _api(ctx) as api:
        api.call("DELETE", f"/groups/{name}")
    out.print(f"group '{name}' deleted")


# -- rollouts --------------------------------------------------------------------------------------

def _counts(wave: dict[str, Any]) -> tuple[int, int]:
    counts = wave["counts"]
    done = sum(n for s, n in counts.items() if s not in ("pending", "running"))
    failed = sum(n for s, n in counts.items() if s in ("failed", "rolled_back", "rollback_failed"))
    return done, failed


@rollouts_app.command("list")
def rollouts_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with _api(ctx) as api:
        rollouts = api.call("GET", "/rollouts")
    if as_json:
        print_json(rollouts)
        return
    table = _table("id", "name", "group", "kind", "state", "devices", "progress", "created")
    for r in rollouts:
        done = sum(_counts(w)[0] for w in r["waves"])
        table.add_row(r["id"], r["name"], r["group"], r["kind"], r["state"], str(r["devices"]),
                      f"{done}/{r['devices']}", r["created_at"][:19].replace("T", " "))
    out.print(table)


@rollouts_app.command("show")
def rollouts_show(ctx: typer.Context, rollout_id: str,
                  devices: Annotated[bool, typer.Option("--devices", help="every device's part")] = False,
                  as_json: JsonOpt = False) -> None:
    """A rollout's state, its waves, and (--devices) each device's part."""
    with _api(ctx) as api:
        r = api.call("GET", f"/rollouts/{rollout_id}")
        targets = api.call("GET", f"/rollouts/{rollout_id}/devices") if devices else []
    if as_json:
        print_json({**r, "targets": targets} if devices else r)
        return
    out.print(f"[bold]{r['name']}[/] ({r['id']}): {r['state']} — {r['reason']}")
    table = _table("wave", "size", "state", "devices by state")
    for w in r["waves"]:
        table.add_row(str(w["index"] + 1), str(w["size"]), w["state"] + (" (resumed)" if w["waived"] else ""),
                      ", ".join(f"{n} {s}" for s, n in sorted(w["counts"].items())))
    out.print(table)
    if devices:
        table = _table("endpoint", "wave", "state", "detail")
        for t in targets:
            table.add_row(t["endpoint"], str(t["wave"] + 1), t["state"], t["detail"])
        out.print(table)


@rollouts_app.command("create")
def rollouts_create(
    ctx: typer.Context,
    group: Annotated[str, typer.Option(help="the group to update")],
    build: Annotated[list[str], typer.Option("--build", "-b", help="a finished build (one a board; repeat)")],
    model_only: Annotated[bool, typer.Option("--model", help="only the model (SOTA)")] = False,
    waves: Annotated[str, typer.Option(help='wave sizes: counts, shares and "rest"')] = "1,10%,rest",
    success: Annotated[float, typer.Option(help="share of a wave that must succeed")] = 0.95,
    error: Annotated[float, typer.Option(help="share of a wave failing that pauses it")] = 0.05,
    approval: Annotated[bool, typer.Option("--approval", help="wait for an approval between waves")] = False,
    rollback: Annotated[bool, typer.Option(help="put failed devices back on their previous build")] = True,
    name: Annotated[str, typer.Option()] = "",
    follow: Annotated[bool, typer.Option("--follow", help="its progress until it ends or pauses")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll a build out to a group in waves; refused at once if a device cannot run it."""
    body = {"group": group, "builds": build, "kind": "model" if model_only else "firmware", "name": name,
            "waves": [w.strip() for w in waves.split(",") if w.strip()], "success_threshold": success,
            "error_threshold": error, "manual_approval": approval, "rollback": rollback}
    with _api(ctx) as api:
        r = api.call("POST", "/rollouts", json=body)
        if follow:
            r = _follow(api, r)
    if as_json:
        print_json(r)
    elif not follow:
        out.print(f"rollout {r['id']} started: {len(r['waves'])} wave(s), {r['devices']} device(s)")
    if follow:
        _verdict(r)


def _follow(api: ServiceClient, r: dict[str, Any]) -> dict[str, Any]:
    """Rich bars per wave from the rollout's events, until it ends, pauses or waits."""
    rid = r["id"]
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err,
                  disable=not err.is_terminal) as bar:
        tasks: list[TaskID] = [bar.add_task(f"wave {w['index'] + 1}", total=w["size"]) for w in r["waves"]]

        def show(now: dict[str, Any]) -> None:
            for task, w in zip(tasks, now["waves"], strict=True):
                done, failed = _counts(w)
                note = f", {failed} failed" if failed else ""
                bar.update(task, completed=done, description=f"wave {w['index'] + 1} ({w['state']}{note})")

        show(r)
        for kind, data in api.events(f"/rollouts/{rid}/events"):
            if kind not in ("rollout", "progress"):
                continue
            r = data
            show(r)
            if r["state"] not in ("running",):
                break
    return r


def _verdict(r: dict[str, Any]) -> None:
    """Say how the rollout stands; anything but success is one line and an exit code."""
    if r["state"] == "succeeded":
        out.print(f"rollout {r['id']} succeeded: {r['reason']}")
        return
    if r["state"] in ("paused", "waiting_approval"):
        what = "approve" if r["state"] == "waiting_approval" else "resume"
        raise Conflict(f"rollout {r['id']} is {r['state'].replace('_', ' ')}: {r['reason']} "
                       f"('tinymlaas rollouts {what} {r['id']}' to go on)")
    raise TinyMLaaSError(f"rollout {r['id']} {r['state']}: {r['reason']}")


@rollouts_app.command("watch")
def rollouts_watch(ctx: typer.Context, rollout_id: str, as_json: JsonOpt = False) -> None:
    """Follow a rollout with a bar per wave until it ends, pauses or waits for an approval."""
    with _api(ctx) as api:
        r = _follow(api, api.call("GET", f"/rollouts/{rollout_id}"))
    if as_json:
        print_json(r)
    _verdict(r)


def _control(ctx: typer.Context, rollout_id: str, action: str, reason: str) -> None:
    with _api(ctx) as api:
        r = api.call("POST", f"/rollouts/{rollout_id}/{action}", json={"reason": reason})
    out.print(f"rollout {r['id']}: {r['state'].replace('_', ' ')} — {r['reason']}")


@rollouts_app.command("pause")
def rollouts_pause(ctx: typer.Context, rollout_id: str, reason: ReasonOpt = "") -> None:
    """No device starts any more; the updates under way finish."""
    _control(ctx, rollout_id, "pause", reason)


@rollouts_app.command("resume")
def rollouts_resume(ctx: typer.Context, rollout_id: str, reason: ReasonOpt = "") -> None:
    """Carry on where it paused."""
    _control(ctx, rollout_id, "resume", reason)


@rollouts_app.command("approve")
def rollouts_approve(ctx: typer.Context, rollout_id: str, reason: ReasonOpt = "") -> None:
    """Start the next wave of a rollout waiting for an approval."""
    _control(ctx, rollout_id, "approve", reason)


@rollouts_app.command("cancel")
def rollouts_cancel(ctx: typer.Context, rollout_id: str, reason: ReasonOpt = "") -> None:
    """End it; the updates under way finish."""
    _control(ctx, rollout_id, "cancel", reason)


@rollouts_app.command("stop")
def rollouts_stop(ctx: typer.Context, rollout_id: str, reason: ReasonOpt = "") -> None:
    """Emergency stop: end it now, abandoning the updates under way."""
    _control(ctx, rollout_id, "stop", reason)


# -- deployments and jobs --------------------------------------------------------------------------

@deployments_app.command("list")
def deployments_list(ctx: typer.Context,
                     endpoint: Annotated[str | None, typer.Option(help="of this device")] = None,
                     as_json: JsonOpt = False) -> None:
    with _api(ctx) as api:
        deps = api.call("GET", "/deployments", params={"endpoint": endpoint} if endpoint else None)
    if as_json:
        print_json(deps)
        return
    table = _table("id", "device", "kind", "build", "succeeded", "result", "firmware", "created")
    for d in deps:
        ok = "" if d["succeeded"] is None else "yes" if d["succeeded"] else "[red]no[/]"
        table.add_row(d["id"], d["endpoint"], d["kind"], d["build_id"] or "", ok, d["result"],
                      f"{d['firmware_before'] or ''} -> {d['firmware_after'] or ''}".strip(" ->"),
                      d["created_at"][:19].replace("T", " "))
    out.print(table)


@deployments_app.command("show")
def deployments_show(ctx: typer.Context, deployment_id: str) -> None:
    with _api(ctx) as api:
        print_json(api.call("GET", f"/deployments/{deployment_id}"))


def _deploy(ctx: typer.Context, kind: str, endpoint: str, build: str | None, artifact: str | None,
            wait: bool) -> None:
    with _api(ctx) as api:
        made = api.call("POST", f"/devices/{endpoint}/{kind}", json={"build": build, "artifact": artifact})
        if wait:
            _wait_job(api, made["job"]["id"], f"{kind} update of {endpoint}")
            dep = api.call("GET", f"/deployments/{made['deployment']['id']}")
            out.print(f"{endpoint}: {dep['result']} ({dep['firmware_before']} -> {dep['firmware_after']})")
            return
    out.print(f"deployment {made['deployment']['id']} started (job {made['job']['id']})")


@deployments_app.command("firmware")
def deployments_firmware(ctx: typer.Context, endpoint: str,
                         build: Annotated[str | None, typer.Option(help="a finished build")] = None,
                         artifact: Annotated[str | None, typer.Option(help="or an image's SHA-256")] = None,
                         wait: Annotated[bool, typer.Option("--wait", help="until it ends")] = False) -> None:
    """FOTA of one device (refused at once if the build is for another board or CPU)."""
    _deploy(ctx, "firmware", endpoint, build, artifact, wait)


@deployments_app.command("model")
def deployments_model(ctx: typer.Context, endpoint: str,
                      build: Annotated[str, typer.Option(help="a finished build")],
                      wait: Annotated[bool, typer.Option("--wait", help="until it ends")] = False) -> None:
    """SOTA of one device: only the model (FOTA if it cannot swap models)."""
    _deploy(ctx, "model", endpoint, build, None, wait)


def _wait_job(api: ServiceClient, job_id: str, title: str) -> dict[str, Any]:
    with progress_bar(title) as report:
        while True:
            job = api.call("GET", f"/jobs/{job_id}")
            report(job["step"] or job["state"], job["progress"])
            if job["state"] == "failed":
                raise TinyMLaaSError(f"job {job_id} ({job['kind']}) failed: {job['error']}")
            if job["state"] == "succeeded":
                return dict(job)
            time.sleep(0.3)


@jobs_app.command("list")
def jobs_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with _api(ctx) as api:
        jobs = api.call("GET", "/jobs")
    if as_json:
        print_json(jobs)
        return
    table = _table("id", "kind", "state", "progress", "step", "error", "updated")
    for j in jobs:
        table.add_row(j["id"], j["kind"], j["state"], f"{j['progress']:.0%}", j["step"], j["error"] or "",
                      j["updated_at"][:19].replace("T", " "))
    out.print(table)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str) -> None:
    with _api(ctx) as api:
        print_json(api.call("GET", f"/jobs/{job_id}"))


@jobs_app.command("wait")
def jobs_wait(ctx: typer.Context, job_id: str) -> None:
    """Follow a job with a progress bar until it ends (a failure is one line and exit 1)."""
    with _api(ctx) as api:
        job = _wait_job(api, job_id, f"job {job_id}")
    out.print(f"job {job_id} ({job['kind']}) succeeded")


# -- toolchains ------------------------------------------------------------------------------------

@toolchains_app.command("list")
def toolchains_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with _api(ctx) as api:
        found = api.call("GET", "/toolchains")
    if as_json:
        print_json(found)
        return
    table = _table("toolchain", "boards", "image", "from", "description")
    for t in found:
        table.add_row(t["name"], ",".join(t["boards"]), t["image_id"][:19], t["reference"], t["description"])
    out.print(table)


@toolchains_app.command("add")
def toolchains_add(
    ctx: typer.Context,
    name: str,
    board: Annotated[list[str], typer.Option("--board", help="a board it builds for (repeat)")],
    image: Annotated[str | None, typer.Option(help="an image the service's Docker engine has")] = None,
    archive: Annotated[Path | None, typer.Option(help="or a 'docker save' archive to upload")] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Register a builder image; the service runs its self-test before it accepts it."""
    if (image is None) == (archive is None):
        raise InvalidInput("give --image or --archive")
    with _api(ctx) as api:
        if archive is not None:
            try:
                fh = archive.open("rb")
            except OSError as exc:
                raise InvalidInput(f"cannot read {archive}: {exc.strerror}") from None
            with fh:
                made = api.call("POST", "/toolchains/archive", files={"file": (archive.name, fh)},
                                data={"name": name, "boards": ",".join(board), "description": description})
        else:
            made = api.call("POST", "/toolchains", json={"name": name, "image": image, "boards": board,
                                                         "description": description})
    out.print(f"toolchain '{made['name']}' accepted for {', '.join(made['boards'])}")


@toolchains_app.command("remove")
def toolchains_remove(ctx: typer.Context, name: str) -> None:
    with _api(ctx) as api:
        api.call("DELETE", f"/toolchains/{name}")
    out.print(f"toolchain '{name}' removed")


# The shared CLI helpers, imported last: tinymlaas.cli.main imports this module at its end to register
# these commands, and `python -m tinymlaas.cli.main` imports main a second time through here; by then
# every command above is defined, and typer reads the annotations only when the app runs.
from tinymlaas.cli.main import JsonOpt, err, out, print_json, progress_bar  # noqa: E402
