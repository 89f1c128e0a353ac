"""``tinymlaas worker``: a process that runs training, evaluation and build jobs sent through the
broker (``TINYMLAAS_CLUSTER__BROKER_URL``), on the database and data directory the service
instances share."""

from __future__ import annotations

import logging
import os
import socket
from typing import Annotated

import typer

from tinymlaas.config import get_settings

worker_app: typer.Typer = typer.Typer(help="Run jobs sent by the service instances (needs a broker).")


@worker_app.callback(invoke_without_command=True)
def worker(
    name: Annotated[str | None, typer.Option(
        help="this worker's name in job leases; default HOST-PID")] = None,
    threads: Annotated[int, typer.Option(min=1, max=64, help="jobs run at once")] = 1,
) -> None:
    """Take jobs until SIGTERM or Ctrl-C, then finish the running ones."""
    from tinymlaas.distributed import serve_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_worker(get_settings(), name or f"{socket.gethostname()}-{os.getpid()}", threads)
