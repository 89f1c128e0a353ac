"""The ``tinymlaas`` command: thin over the services; errors are one line + exit code."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tinymlaas import __version__
from tinymlaas.config import get_settings
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.plugins.base import no_progress

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
zoo_app = typer.Typer(no_args_is_help=True, help="Models the zoo can train.")
app.add_typer(zoo_app, name="zoo")
users_app = typer.Typer(no_args_is_help=True,
                        help="Users of the management API and their tokens (on this host's database).")
app.add_typer(users_app, name="users")

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
# Tables are the output: never squeeze them into 80 columns when piped to a log.
out = Console(width=max(Console().width, 120))
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"tinymlaas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """TinyML as-a-Service: compile, build, deploy and run ML models on microcontrollers."""


def print_json(data: object) -> None:
    """Machine-readable output: pydantic records and plain data alike."""
    out.print_json(json.dumps(data, default=_jsonable))


def _jsonable(value: object) -> object:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


@contextmanager
def progress_bar(title: str) -> Iterator[Any]:
    """A Rich bar fed by a service's ``progress(step, fraction)`` callback.

    Only on a terminal, and removed when the step fails, so that a failure
    reads as exactly one line on stderr.
    """
    if not err.is_terminal:
        yield no_progress
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err,
    ) as bar:
        task = bar.add_task(title, total=1.0)

        def report(step: str, fraction: float) -> None:
            bar.update(task, completed=min(max(fraction, 0.0), 1.0), description=f"{title}: {step}")

        try:
            yield report
        except BaseException:
            bar.update(task, visible=False)
            raise


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``-O key=value`` pairs; values are JSON when they parse as JSON."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"option '{pair}' is not key=value")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def read_model_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"no such model file: {path}") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a directory, not a model file") from exc


@app.command()
def targets(as_json: JsonOpt = False) -> None:
    """List target boards with their memory."""
    from tinymlaas.targets import load_boards

    boards = list(load_boards(get_settings().targets_dir).values())
    if as_json:
        print_json(boards)
        return
    table = Table("board", "cpu", "arch", "flash", "RAM", "compilers", "emulator")
    for b in boards:
        table.add_row(b.name, b.cpu, b.arch, f"{b.flash_bytes:,}", f"{b.ram_bytes:,}",
                      ",".join(b.compilers), ", ".join(b.emulators) or "container")
    out.print(table)


@app.command()
def compilers(
    coverage: Annotated[list[Path] | None, typer.Option(
        "--coverage", help="a model: which of its ops and dtypes each compiler takes (repeatable)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List compiler plugins, their ops and options; with --coverage, what they take of models."""
    from tinymlaas.plugins.base import Compiler
    from tinymlaas.plugins.registry import plugins

    if coverage:
        _coverage(coverage, as_json)
        return
    cards = [cls.describe() for cls in plugins("compilers").values() if issubclass(cls, Compiler)]
    if as_json:
        print_json(cards)
        return
    for d in cards:
        out.print(f"[bold]{d.name}[/] {d.version}: {d.doc}")
        out.print(f"  arches: {', '.join(d.arches)}; dtypes: {', '.join(d.dtypes)}")
        out.print(f"  ops ({len(d.ops)}): {', '.join(d.ops)}")
        for key, prop in d.options.get("properties", {}).items():
            out.print(f"  -O {key}=<{prop.get('type', 'value')}>  {prop.get('description', '')}")


def _coverage(models: list[Path], as_json: bool) -> None:
    """Per model, each op and dtype and whether ``aot`` and ``tflm`` take it (and why not)."""
    from dataclasses import asdict

    from tinymlaas.compilers.aot import coverage

    report = {str(m): coverage(read_model_file(m)) for m in models}
    if as_json:
        print_json({m: [asdict(r) for r in rows] for m, rows in report.items()})
        return
    for model, rows in report.items():
        table = Table("op", "dtype", "count", "aot", "tflm", "notes", title=str(model))
        for r in rows:
            why = "; ".join(x for x in (r.aot_reason, r.tflm_reason) if x)
            table.add_row(r.op, r.dtype, str(r.count), "yes" if r.aot else "[red]no[/]",
                          "yes" if r.tflm else "[red]no[/]", why)
        out.print(table)


@app.command()
def inspect(model: Path) -> None:
    """Show what a .tflite model contains."""
    from tinymlaas import tflite

    out.print_json(tflite.inspect(read_model_file(model)).model_dump_json())


@app.command("compile")
def compile_cmd(
    model: Path,
    target: Annotated[str, typer.Option("--target", "-t", help="board name (see 'targets')")],
    output: Annotated[Path, typer.Option("--output", "-o", help="module directory to write")],
    compiler: Annotated[str | None, typer.Option(help="compiler plugin; default: board's")] = None,
    name: Annotated[str, typer.Option(help="module name (and C prefix)")] = "model",
    option: Annotated[list[str], typer.Option("--option", "-O", help="compiler option k=v")] = [],  # noqa: B006
) -> None:
    """Compile MODEL for a board into an inference module."""
    from tinymlaas.services.compile import compile_model
    from tinymlaas.targets import get_board

    settings = get_settings()
    board = get_board(settings.targets_dir, target)
    data = read_model_file(model)
    with progress_bar("compile") as report:
        manifest = compile_model(data, board, output, compiler=compiler, name=name,
                                 options=parse_options(option), progress=report)
    out.print(f"wrote {output}: {manifest.compiler.name} module, arena {manifest.memory.arena_bytes} B,"
              f" weights {manifest.memory.weights_bytes} B")


@app.command()
def build(
    module: Path,
    target: Annotated[str, typer.Option("--target", "-t")],
    output: Annotated[Path, typer.Option("--output", "-o", help="firmware directory to write")],
    builder: Annotated[str, typer.Option(help="docker (builder container) or local")] = "docker",
    version: Annotated[str, typer.Option(help="firmware version")] = "1.0.0",
    as_json: JsonOpt = False,
) -> None:
    """Build a device OS image from an inference module."""
    from tinymlaas.plugins.registry import builder_plugin
    from tinymlaas.targets import get_board

    board = get_board(get_settings().targets_dir, target)
    with progress_bar("build") as report:
        fw = builder_plugin(builder)().build(module, board, output, version=version, progress=report)
    if as_json:
        print_json(fw)
        return
    out.print(f"wrote {output / fw.image}: firmware {fw.version} for {fw.board}, "
              f"model {fw.model_sha256[:12]}")
    for region in ("flash", "ram"):
        if region in fw.sizes:
            used, free = fw.sizes[region], fw.headroom.get(region)
            room = f", {free:,} B free of the board's {used + free:,} B" if free is not None else ""
            out.print(f"  {region:<5} {used:>10,} B{room}")


@app.command()
def images(as_json: JsonOpt = False) -> None:
    """Build the base and every board's images (only what changed)."""
    from tinymlaas.images import ensure_all

    with progress_bar("images") as report:
        built = ensure_all(get_settings(), progress=report)
    if as_json:
        print_json(built)
        return
    for tag, rebuilt in built.items():
        out.print(f"{tag}: {'built' if rebuilt else 'up to date'}")


@zoo_app.command("list")
def zoo_list(as_json: JsonOpt = False) -> None:
    """Recipes the zoo can train."""
    from tinymlaas.zoo import recipes

    found = sorted(recipes().items())
    if as_json:
        print_json([{"name": name, "description": cls.description} for name, cls in found])
        return
    for name, cls in found:
        out.print(f"[bold]{name}[/]: {cls.description}")


@zoo_app.command("get")
def zoo_get(
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o")],
    seed: Annotated[int | None, typer.Option(help="training seed")] = None,
) -> None:
    """Train (or reuse the cached) zoo model NAME and write its .tflite."""
    from tinymlaas.zoo import get_recipe

    recipe = get_recipe(name)
    with progress_bar(f"zoo {name}") as report:
        report("training (cached after the first time)", 0.1)
        data = recipe.load(get_settings().zoo_dir, seed)
        report("done", 1.0)
    output.write_bytes(data)
    out.print(f"wrote {output} ({len(data)} bytes)")


@contextmanager
def local_store() -> Iterator[Any]:
    """The store this machine's settings name, for commands that need no running service."""
    from tinymlaas.store import Store

    settings = get_settings()
    store = Store(settings.db_url, settings.artifacts_dir)
    try:
        yield store
    finally:
        store.close()


@users_app.command("create")
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, data-scientist, operator or admin")] = "viewer",
    admin: Annotated[bool, typer.Option("--admin", help="same as --role admin")] = False,
    password: Annotated[bool, typer.Option(help="also set a password (asked for) for the web app")] = False,
) -> None:
    """Create a user and print their first API token (shown once)."""
    from tinymlaas.auth import Role

    try:
        chosen = Role.admin if admin else Role(role)
    except ValueError:
        raise InvalidInput(f"role '{role}' is none of {', '.join(r.value for r in Role)}") from None
    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    with local_store() as store:
        store.users.create(name, chosen, password=secret)
        token = store.users.issue_token(name, "cli")
    out.print(f"created {chosen.value} '{name}'; API token (shown once): {token.token}")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Users, their roles, and their tokens (never the secrets)."""
    with local_store() as store:
        users, tokens = store.users.all(), store.users.tokens()
    if as_json:
        print_json({"users": users, "tokens": tokens})
        return
    table = Table("user", "role", "disabled", "tokens")
    for u in users:
        mine = [f"{t.name} ({t.prefix}…)" for t in tokens if t.user == u.name]
        table.add_row(u.name, u.role.value, "yes" if u.disabled else "", ", ".join(mine))
    out.print(table)


@users_app.command("token")
def users_token(name: str, label: Annotated[str, typer.Option("--name", help="what it is for")] = "cli"
                ) -> None:
    """A new API token for a user (shown once)."""
    with local_store() as store:
        token = store.users.issue_token(name, label)
    out.print(token.token)


@app.command()
def demo(
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards to run on")] = [  # noqa: B006
        "x86-tflm", "mps2-an385"],
    builder: Annotated[str, typer.Option(help="docker or local")] = "docker",
    lifecycle: Annotated[bool, typer.Option(help="then the dry-run over LwM2M (FOTA, SOTA)")] = True,
    as_json: JsonOpt = False,
) -> None:
    """The whole loop: hello_world -> compile -> build -> boot -> 7 inferences, per board;
    then the lifecycle over LwM2M: register, infer, FOTA and SOTA through the service."""
    from tinymlaas.images import ensure_all
    from tinymlaas.services.pipeline import hello_world_loop
    from tinymlaas.targets import get_board

    settings = get_settings()
    boards = [get_board(settings.targets_dir, t) for t in target]  # unknown boards fail first
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    failed, report_rows = [], []
    for board in boards:
        with tempfile.TemporaryDirectory(prefix="tinymlaas-demo-") as tmp, \
                progress_bar(f"demo {board.name}") as report:
            result = hello_world_loop(settings, Path(tmp), target=board.name, builder=builder,
                                      progress=report)
        if not all(r.bit_exact and r.error < 0.15 for r in result.results):
            failed.append(board.name)
        if as_json:
            report_rows.append({"board": board.name, "banner": result.banner, "firmware": result.firmware,
                                "results": [{**asdict(r), "bit_exact": r.bit_exact, "error": r.error}
                                            for r in result.results]})
            continue
        out.print(result.banner, soft_wrap=True)
        counted = any(r.instructions is not None for r in result.results)
        table = Table("x", "sin(x)", "device int8", "device value", "TFLM int8", "|error|", "bit-exact",
                      *(["instructions"] if counted else []),
                      title=f"hello_world on {board.name} ({board.cpu}) vs in-process TFLM")
        for r in result.results:
            table.add_row(f"{r.x:g}", f"{r.expected:+.4f}", str(r.device_raw), f"{r.device_value:+.4f}",
                          str(r.tflm_raw), f"{r.error:.4f}", "yes" if r.bit_exact else "[red]NO[/]",
                          *([f"{r.instructions:,}"] if counted else []))
        out.print(table)
        fw = result.firmware
        out.print(f"firmware {fw.version} for {fw.board}: flash {fw.sizes.get('flash', 0):,} B, "
                  f"RAM {fw.sizes.get('ram', 0):,} B, model {fw.model_sha256[:12]}\n")
    runs = run_dry_run(target, as_json=as_json) if lifecycle and not failed else []
    if as_json:
        print_json({"boards": report_rows, "lifecycle": [asdict(r) for r in runs]})
    if failed:
        raise TinyMLaaSError(f"outputs differ from TFLM's or from sin(x) on: {', '.join(failed)}")
    _check_runs(runs)


def run_dry_run(boards: list[str], orchestrator: str = "lwm2m", *, as_json: bool = False) -> list[Any]:
    """Run the lifecycle dry-run and print one table per board (unless ``as_json``)."""
    from tinymlaas.services.lifecycle import dry_run

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="tinymlaas-dryrun-") as tmp, \
            progress_bar("lifecycle") as report:
        runs = dry_run(settings, Path(tmp), boards, progress=report, orchestrator=orchestrator)
    for run in [] if as_json else runs:
        table = Table("step", "ok", "seconds", "detail",
                      title=f"lifecycle over {orchestrator} on {run.board} (device '{run.endpoint}')")
        for c in run.checks:
            table.add_row(c.step, "yes" if c.ok else "[red]NO[/]", f"{c.seconds:.1f}", c.detail)
        out.print(table)
    return runs


def _check_runs(runs: list[Any]) -> None:
    failed = [r.board for r in runs if not r.ok]
    if failed:
        raise TinyMLaaSError(f"the lifecycle dry-run failed on: {', '.join(failed)}")


@app.command()
def dryrun(
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards to run on")] = [  # noqa: B006
        "x86-tflm", "lm3s6965evb"],
    orchestrator: Annotated[str, typer.Option(help="lwm2m or http-pull")] = "lwm2m",
    as_json: JsonOpt = False,
) -> None:
    """The CTO's dry-run of the whole lifecycle: build, join, infer, FOTA, SOTA."""
    from tinymlaas.images import ensure_all
    from tinymlaas.plugins.registry import orchestrator_plugin
    from tinymlaas.targets import get_board

    settings = get_settings()
    for t in target:
        get_board(settings.targets_dir, t)  # unknown boards fail before any work
    orchestrator_plugin(orchestrator)
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    runs = run_dry_run(target, orchestrator, as_json=as_json)
    if as_json:
        print_json([asdict(r) for r in runs])
    _check_runs(runs)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: settings (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="default: settings (8000)")] = None,
    orchestrator: Annotated[str | None, typer.Option(
        help="how devices are managed: lwm2m (CoAP/UDP) or http-pull (devices poll the API)")] = None,
) -> None:
    """Run the REST API (OpenAPI docs at /docs) and the devices' orchestrator."""
    import uvicorn

    from tinymlaas.api.main import create_app
    from tinymlaas.plugins.registry import orchestrator_plugin
    from tinymlaas.web.sse import SHUTDOWN_GRACE_S

    settings = get_settings()
    if orchestrator is not None:
        orchestrator_plugin(orchestrator)  # an unknown name fails here, in one line
        settings = settings.model_copy(update={"orchestrator": orchestrator})
    uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)  # the web app's live streams stay open


@app.command()
def run(
    firmware: Annotated[Path, typer.Argument(help="firmware.elf (or its folder)")],
    target: Annotated[str, typer.Option("--target", "-t", help="board name (see 'targets')")],
    input: Annotated[list[Path], typer.Option(
        "--input", "-i", help=".npy, one per input tensor in the model's order (repeat the option): "
                              "values of the tensor's dtype are raw, others are quantized")],
    emulator: Annotated[str | None, typer.Option(
        help="qemu or renode; default: the emulator.backend setting, else the first of the "
             "board's emulators that is installed")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Boot FIRMWARE in an emulator, run the input through it, print outputs and instruction counts."""
    import numpy as np

    from tinymlaas.services.mcu_device import (
        McuDevice,
        check_image_board,
        firmware_image,
        input_tensors,
        output_values,
    )
    from tinymlaas.targets import get_board, load_boards

    settings = get_settings()
    board = get_board(settings.targets_dir, target)
    image = firmware_image(firmware)
    check_image_board(image, board, load_boards(settings.targets_dir))
    arrays = []
    for path in input:
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {path} as a .npy array: {exc}") from exc
    with McuDevice(board, image, emulator=emulator) as device:
        specs = device.tensors()
        rows = []
        for tensor in input_tensors(arrays, specs):
            result = device.infer(tensor)
            outs = output_values(result, specs)
            rows.append({"output": outs[0]["output"], "values": outs[0]["values"], "outputs": outs,
                         "instructions": result.instructions})
    if as_json:
        print_json({"banner": device.banner.line, "boot_seconds": device.boot_seconds, "inferences": rows})
        return
    out.print(f"{device.banner.line} (ready {device.boot_seconds:.2f} s after start)")
    table = Table("#", "output (raw)", "output values", "instructions")
    for i, row in enumerate(rows):
        table.add_row(str(i), " | ".join(" ".join(map(str, o["output"])) for o in row["outputs"]),
                      " | ".join(" ".join(f"{v:.6g}" for v in o["values"]) for o in row["outputs"]),
                      f"{row['instructions']:,}")
    out.print(table)


@app.command()
def emulate(
    firmware: Annotated[Path, typer.Argument(help="firmware.elf (or its folder)")],
    target: Annotated[str, typer.Option("--target", "-t", help="board name (see 'targets')")],
    emulator: Annotated[str | None, typer.Option(help="qemu or renode; default: as for run")] = None,
) -> None:
    """Boot FIRMWARE in an emulator with the board's UART on stdin/stdout until stdin closes: the
    boot text up to the ready banner, then whole frames of the UART protocol (the flasher a
    bridge runs for an emulated MCU; whole frames, so the emulator may correct their counts)."""
    import os
    import signal
    import threading

    from tinymlaas.edge.uart import READY
    from tinymlaas.errors import EmulatorError, FirmwareCrashed
    from tinymlaas.services.mcu_device import emulator_for, firmware_image
    from tinymlaas.targets import get_board

    settings = get_settings()
    board = get_board(settings.targets_dir, target)
    image = firmware_image(firmware)
    session = emulator_for(board, emulator).start(image, board)
    closed = threading.Event()

    def to_board() -> None:
        with contextlib.suppress(TinyMLaaSError, OSError):  # the board stopped: the loop says why
            while chunk := os.read(0, 4096):
                session.write(chunk)
        closed.set()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=to_board, name="stdin", daemon=True).start()
    try:
        line = b""
        while not line.startswith(READY.encode()):
            line = session.read_until(b"\n", settings.emulator.boot_timeout_s)
            os.write(1, line)
        while not closed.is_set():
            try:
                os.write(1, session.read_until(b"\x00", 0.2))
            except FirmwareCrashed:
                raise
            except EmulatorError:  # nothing whole within 0.2 s: look at stdin again
                continue
    finally:
        session.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the command; whatever goes wrong is one line on stderr and the family's exit code."""
    try:
        code = typer.main.get_command(app).main(argv, prog_name="tinymlaas", standalone_mode=False)
    except TinyMLaaSError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Exit, typer.Abort, KeyboardInterrupt) as exc:
        sys.exit(getattr(exc, "exit_code", 130))
    except Exception as exc:
        # Usage errors: typer bundles its own click, whose exceptions carry these two.
        exit_code, message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
        if not isinstance(exit_code, int) or not callable(message):
            raise
        print(f"error: {message()}", file=sys.stderr)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


# The data scientist's commands (datasets, train, evaluate, profile) live in their own module.
from tinymlaas.cli.datasets import register as _register_datasets  # noqa: E402

_register_datasets(app)

# The CFO's commands (cost compare, inputs, hybrid).
from tinymlaas.cli.cost import cost_app  # noqa: E402

app.add_typer(cost_app, name="cost")
# The operator's commands for a running service (devices, groups, rollouts, ...) live in their own module.
from tinymlaas.cli.fleet import register as _register_fleet  # noqa: E402

_register_fleet(app)
# The operator's ML pipelines (validate, run, status, rerun) live in their own module.
from tinymlaas.cli.pipelines import pipeline_app  # noqa: E402

app.add_typer(pipeline_app, name="pipeline")

# Beyond one machine: the worker process of distributed jobs.
from tinymlaas.cli.cluster import worker_app  # noqa: E402

app.add_typer(worker_app, name="worker")

# The demo's service with its devices running, to open in a browser.
from tinymlaas.cli.lab import lab_app  # noqa: E402

app.add_typer(lab_app, name="lab")

if __name__ == "__main__":
    main()
