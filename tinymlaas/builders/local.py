"""Builds with the board's builder entry point run on this machine (no Docker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.builders._common import ContractBuilder, failure, follow_progress, watchdog
from tinymlaas.config import REPO_ROOT
from tinymlaas.errors import BuildFailed
from tinymlaas.models import Board
from tinymlaas.plugins.base import Progress


class LocalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(900.0, gt=0)
    targets_dir: Path = REPO_ROOT / "targets"


class LocalBuilder(ContractBuilder):
    """Runs the builder script with the host's toolchain."""

    name = "local"
    Options = LocalOptions

    def execute(
        self, module_dir: Path, board: Board, out: Path, version: str, progress: Progress
    ) -> None:
        assert isinstance(self.options, LocalOptions)
        if not board.builder.local:
            raise BuildFailed(f"board '{board.name}' declares no local builder command")
        ctx = self.options.targets_dir / board.name / board.builder.context
        cmd = [sys.executable if a == "{python}" else a for a in board.builder.local]
        cmd += [str(module_dir / "model.tflite"), "--out", str(out), "--board", board.name,
                "--version", version, "--boards-dir", str(self.options.targets_dir)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        log: list[str] = []
        what = f"local builder for '{board.name}'"
        try:
            with subprocess.Popen(cmd, cwd=ctx, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) as proc:
                assert proc.stdout is not None
                with watchdog(self.options.timeout_s, proc.kill, what):
                    follow_progress((ln.rstrip("\n") for ln in proc.stdout), progress, log)
                    code = proc.wait()
        except FileNotFoundError as exc:
            raise BuildFailed(f"{what} cannot start: {exc}") from exc
        if code != 0:
            raise failure(what, code, log)
