"""Builds in the board's builder image, per the partner contract:
``docker run --network none -v IN:/in:ro -v OUT:/out <builder> /in/model.tflite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.builders._common import ContractBuilder, failure, follow_progress, watchdog
from tinymlaas.config import get_settings
from tinymlaas.images import current_image, docker_client
from tinymlaas.models import Board
from tinymlaas.plugins.base import Progress

#: Names the folder a builder container builds from.
INPUT_LABEL = "org.tinymlaas.input"


class DockerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(900.0, gt=0, description="kill the builder after this long")
    mem_limit: str = Field("4g", description="memory limit of the builder container")


class DockerBuilder(ContractBuilder):
    """Runs the board's builder image with no network."""

    name = "docker"
    Options = DockerOptions

    def execute(
        self, module_dir: Path, board: Board, out: Path, version: str, progress: Progress
    ) -> None:

        assert isinstance(self.options, DockerOptions)
        client = docker_client()
        # Built here if missing: never let the engine try a pull.
        image = current_image(get_settings(), board.builder.image, client)
        container = client.containers.run(
            image,
            ["/in/model.tflite", "--out", "/out", "--board", board.name, "--version", version],
            volumes={str(module_dir): {"bind": "/in", "mode": "ro"},
                     str(out): {"bind": "/out", "mode": "rw"}},
            network_mode="none",
            mem_limit=self.options.mem_limit,
            # What it builds from: a service that died mid-build finds its leftovers by it.
            labels={"org.tinymlaas.role": "builder", "org.tinymlaas.board": board.name,
                    INPUT_LABEL: str(module_dir.resolve())},
            detach=True,
        )
        log: list[str] = []
        try:
            with watchdog(self.options.timeout_s, container.kill, f"builder {image}"):
                stream = container.logs(stream=True, follow=True)
                follow_progress((b.decode(errors="replace") for b in _lines(stream)), progress, log)
                code = container.wait()["StatusCode"]
        finally:
            container.remove(force=True)
        if code != 0:
            raise failure(f"builder {image}", code, log)


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line
    if buf:
        yield buf
