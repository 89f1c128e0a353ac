"""What both builders share: the partner contract's arguments and the result check.

A builder entry point is called as ``BUILDER MODEL --out DIR --board NAME
--version V [--boards-dir DIR]``; it writes the OS image and ``manifest.json``
into ``DIR`` and prints ``@progress <fraction> <step>`` lines as it goes. A
refusal that is the caller's problem (e.g. the model does not fit) is one
``@error {"code": .., "message": .., "details": {..}}`` line, re-raised here as
the error class with that code.
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from tinymlaas import errors
from tinymlaas.errors import BuildFailed, InvalidInput, TinyMLaaSError
from tinymlaas.models import Board, FirmwareManifest
from tinymlaas.plugins.base import Builder, Progress, no_progress
from tinymlaas.services.compile import read_module
from tinymlaas.services.staging import staged_dir

PROGRESS_PREFIX = "@progress "
ERROR_PREFIX = "@error "


def follow_progress(lines: Iterable[str], progress: Progress, log: list[str]) -> None:
    """Keep a builder's output and turn its ``@progress`` lines into progress calls."""
    for line in lines:
        log.append(line)
        if line.startswith(PROGRESS_PREFIX):
            frac, _, step = line[len(PROGRESS_PREFIX):].partition(" ")
            try:
                progress(step, float(frac))
            except ValueError:
                continue


@contextmanager
def watchdog(timeout_s: float, kill: Callable[[], object], what: str) -> Iterator[None]:
    """Kill a builder that outlives its time, and say so instead of its exit code."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        kill()

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if fired.is_set():
            raise BuildFailed(f"{what} timed out after {timeout_s:.0f} s and was killed")


def failure(what: str, code: int, log: list[str]) -> TinyMLaaSError:
    """The builder's own ``@error``, or a build error whose message is its last words."""
    for line in reversed(log):
        if line.startswith(ERROR_PREFIX):
            reported = reported_error(line[len(ERROR_PREFIX):])
            if reported is not None:
                return reported
    tail = [ln for ln in log if ln.strip() and not ln.startswith(PROGRESS_PREFIX)][-3:]
    return BuildFailed(f"{what} failed (exit {code}): {' | '.join(tail) or 'no output'}",
                       log="\n".join(log[-200:]))



def reported_error(text: str) -> TinyMLaaSError | None:
    """An ``@error`` line's JSON as the error class with its code; the caller's mistakes
    (InvalidInput and below) cross the boundary as themselves, the rest as BuildFailed."""
    try:
        data = json.loads(text)
        code, message = str(data["code"]), str(data["message"])
        details = data.get("details") or {}
    except (ValueError, KeyError, TypeError):
        return None
    cls = errors.by_code().get(code, BuildFailed)
    if not issubclass(cls, InvalidInput):
        cls = BuildFailed
    return cls(message, **details)


class ContractBuilder(Builder):
    """Runs a builder entry point in a staging dir and checks what it wrote."""

    @property
    def label(self) -> str:
        """What the firmware manifest says built it."""
        return self.name

    def build(
        self,
        module_dir: Path,
        board: Board,
        out_dir: Path,
        *,
        version: str = "1.0.0",
        progress: Progress = no_progress,
    ) -> FirmwareManifest:
        module = read_module(module_dir)
        if module.kind != board.module_kind:
            raise BuildFailed(
                f"module kind '{module.kind}' cannot be built for board '{board.name}', "
                f"which builds '{board.module_kind}' modules"
            )
        with staged_dir(out_dir) as tmp:
            self.execute(module_dir.resolve(), board, tmp, version, progress)
            manifest = self.check_output(tmp)
            manifest.builder = self.label
            (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
        return manifest

    @staticmethod
    def check_output(out: Path) -> FirmwareManifest:
        path = out / "manifest.json"
        try:
            manifest = FirmwareManifest.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError, ValidationError) as exc:
            raise BuildFailed(f"the builder wrote no valid manifest.json: {exc}") from exc
        if not (out / manifest.image).is_file():
            raise BuildFailed(f"the builder's manifest names {manifest.image}, which it did not write")
        return manifest

    @abstractmethod
    def execute(
        self, module_dir: Path, board: Board, out: Path, version: str, progress: Progress
    ) -> None:
        """Run the builder with ``module_dir`` as input and ``out`` as output."""
