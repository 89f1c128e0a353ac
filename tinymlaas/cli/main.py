"""The ``tinymlaas`` command: thin over the services; errors are one line + exit code."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tinymlaas.config import get_settings
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.plugins.base import no_progress

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
zoo_app = typer.Typer(no_args_is_help=True, help="Models the zoo can train.")
app.add_typer(zoo_app, name="zoo")
# Tables are the output: never squeeze them into 80 columns when piped to a log.
out = Console(width=max(Console().width, 120))
err = Console(stderr=True)


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
def targets() -> None:
    """List target boards with their memory."""
    from tinymlaas.targets import load_boards

    table = Table("board", "cpu", "arch", "flash", "RAM", "compilers", "emulator")
    for b in load_boards(get_settings().targets_dir).values():
        table.add_row(b.name, b.cpu, b.arch, f"{b.flash_bytes:,}", f"{b.ram_bytes:,}",
                      ",".join(b.compilers), str(b.emulator.get("qemu_machine", "container")))
    out.print(table)


@app.command()
def compilers() -> None:
    """List compiler plugins, their ops and options."""
    from tinymlaas.plugins.registry import plugins

    for cls in plugins("compilers").values():
        d = cls.describe()
        out.print(f"[bold]{d['name']}[/] {d['version']}: {d['doc']}")
        out.print(f"  arches: {', '.join(d['arches'])}; dtypes: {', '.join(d['dtypes'])}")
        out.print(f"  ops ({len(d['ops'])}): {', '.join(d['ops'])}")
        for key, prop in d["options"].get("properties", {}).items():
            out.print(f"  -O {key}=<{prop.get('type', 'value')}>  {prop.get('description', '')}")


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
) -> None:
    """Build a device OS image from an inference module."""
    from tinymlaas.plugins.base import Builder
    from tinymlaas.plugins.registry import get
    from tinymlaas.targets import get_board

    board = get_board(get_settings().targets_dir, target)
    with progress_bar("build") as report:
        fw = get("builders", builder, Builder)().build(module, board, output, version=version,
                                                       progress=report)
    out.print(f"wrote {output / fw.image}: {fw.sizes} (headroom {fw.headroom})")


@app.command()
def images() -> None:
    """Build the base and every board's images (only what changed)."""
    from tinymlaas.images import ensure_all

    with progress_bar("images") as report:
        built = ensure_all(get_settings(), progress=report)
    for tag, rebuilt in built.items():
        out.print(f"{tag}: {'built' if rebuilt else 'up to date'}")


@zoo_app.command("list")
def zoo_list() -> None:
    """Recipes the zoo can train."""
    from tinymlaas.zoo import recipes

    for name, cls in sorted(recipes().items()):
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


@app.command()
def demo(
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards to run on")] = [  # noqa: B006
        "x86-tflm", "mps2-an385"],
    builder: Annotated[str, typer.Option(help="docker or local")] = "docker",
    lifecycle: Annotated[bool, typer.Option(help="then the dry-run over LwM2M (FOTA, SOTA)")] = True,
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
    failed = []
    for board in boards:
        with tempfile.TemporaryDirectory(prefix="tinymlaas-demo-") as tmp, \
                progress_bar(f"demo {board.name}") as report:
            result = hello_world_loop(settings, Path(tmp), target=board.name, builder=builder,
                                      progress=report)
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
        if not all(r.bit_exact and r.error < 0.15 for r in result.results):
            failed.append(board.name)
    if failed:
        raise TinyMLaaSError(f"outputs differ from TFLM's or from sin(x) on: {', '.join(failed)}")
    if lifecycle:
        run_dry_run(target)


def run_dry_run(boards: list[str], orchestrator: str = "lwm2m") -> None:
    """Run the lifecycle dry-run and print one table per board; fail if any step failed."""
    from tinymlaas.services.lifecycle import dry_run

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="tinymlaas-dryrun-") as tmp, \
            progress_bar("lifecycle") as report:
        runs = dry_run(settings, Path(tmp), boards, progress=report, orchestrator=orchestrator)
    for run in runs:
        table = Table("step", "ok", "seconds", "detail",
                      title=f"lifecycle over {orchestrator} on {run.board} (device '{run.endpoint}')")
        for c in run.checks:
            table.add_row(c.step, "yes" if c.ok else "[red]NO[/]", f"{c.seconds:.1f}", c.detail)
        out.print(table)
    failed = [r.board for r in runs if not r.ok]
    if failed:
        raise TinyMLaaSError(f"the lifecycle dry-run failed on: {', '.join(failed)}")


@app.command()
def dryrun(
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards to run on")] = [  # noqa: B006
        "x86-tflm", "lm3s6965evb"],
    orchestrator: Annotated[str, typer.Option(help="lwm2m or http-pull")] = "lwm2m",
) -> None:
    """The CTO's dry-run of the whole lifecycle: build, join, infer, FOTA, SOTA."""
    from tinymlaas.images import ensure_all
    from tinymlaas.plugins.base import Orchestrator
    from tinymlaas.plugins.registry import get
    from tinymlaas.targets import get_board

    settings = get_settings()
    for t in target:
        get_board(settings.targets_dir, t)  # unknown boards fail before any work
    get("orchestrators", orchestrator, Orchestrator)
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    run_dry_run(target, orchestrator)


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
    from tinymlaas.plugins.base import Orchestrator
    from tinymlaas.plugins.registry import get

    settings = get_settings()
    if orchestrator is not None:
        get("orchestrators", orchestrator, Orchestrator)  # an unknown name fails here, in one line
        settings = settings.model_copy(update={"orchestrator": orchestrator})
    uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port)


@app.command()
def run(
    firmware: Annotated[Path, typer.Argument(help="firmware.elf (or its folder)")],
    target: Annotated[str, typer.Option("--target", "-t", help="board name (see 'targets')")],
    input: Annotated[Path, typer.Option("--input", "-i", help=".npy: int8 = raw, float = quantized")],
    emulator: Annotated[str | None, typer.Option(
        help="qemu or renode; default: the emulator.backend setting, else the first of the "
             "board's emulators that is installed")] = None,
) -> None:
    """Boot FIRMWARE in an emulator, run the input through it, print outputs and instruction counts."""
    import numpy as np

    from tinymlaas.services.mcu_device import McuDevice, input_tensors, output_values
    from tinymlaas.targets import get_board

    board = get_board(get_settings().targets_dir, target)
    try:
        values = np.load(input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {input} as a .npy array: {exc}") from exc
    with McuDevice(board, firmware, emulator=emulator) as device:
        info = device.info()
        tensors = input_tensors(values, info)
        out.print(f"{device.banner.line} (ready {device.boot_seconds:.2f} s after start)")
        table = Table("#", "output int8", "output values", "instructions")
        for i, tensor in enumerate(tensors):
            result = device.infer(tensor)
            vals = output_values(result, info)
            table.add_row(str(i), " ".join(str(v) for v in result.values()),
                          " ".join(f"{v:.6g}" for v in vals), f"{result.instructions:,}")
        out.print(table)


def main() -> None:
    try:
        typer.main.get_command(app).main(standalone_mode=False)
    except TinyMLaaSError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()
