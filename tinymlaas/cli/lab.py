"""``tinymlaas lab``: the service with the demo's devices running, to open in a browser."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from tinymlaas.config import get_settings

lab_app: typer.Typer = typer.Typer(invoke_without_command=True)


def _interrupt(*_: Any) -> None:
    """SIGTERM ends the lab like Ctrl-C does: its devices and service stop first."""
    raise KeyboardInterrupt


@lab_app.callback()
def lab(
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards whose devices join")] = [  # noqa: B006
        "x86-tflm", "mps2-an385"],
    port: Annotated[int, typer.Option(help="the web app and API on 127.0.0.1:PORT")] = 8000,
) -> None:
    """A fresh service on 127.0.0.1:PORT (web app at /), the boards' devices built, booted and
    joined, an inference on each every few seconds; until Ctrl-C. Prints where and how to log in."""
    from tinymlaas.cli.main import out, progress_bar
    from tinymlaas.images import ensure_all
    from tinymlaas.services.lab import check_port
    from tinymlaas.services.lab import lab as start

    check_port("127.0.0.1", port)
    settings = get_settings()
    signal.signal(signal.SIGTERM, _interrupt)
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    with tempfile.TemporaryDirectory(prefix="tinymlaas-lab-") as tmp, contextlib.ExitStack() as running:
        with progress_bar("lab") as report:
            lab_ = running.enter_context(start(settings, Path(tmp), target, port=port, progress=report))
        out.print(f"\nThe service runs with the demo's devices: open [bold]{lab_.url}[/]")
        out.print(f"log in as [bold]{lab_.user}[/], password [bold]{lab_.password}[/]")
        out.print(f"devices: {', '.join(lab_.devices)} (an inference on each every few seconds); "
                  "Ctrl-C stops them and the service\n")
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            out.print("stopping the devices and the service")
