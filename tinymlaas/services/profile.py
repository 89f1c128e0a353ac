"""Profile a model across boards before deploying it: per board, whether it fits (the compiler's
planned arena and the builder's linked sizes against flash and RAM), the instructions one inference
takes on the board's emulator, and the latency that implies at the board's clock. Measured, not
estimated: the firmware is really built and booted (a build is kept for the next profile of the
same model, board and builder image)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.datasets.models import BoardProfile, Profile, ProfileRequest
from tinymlaas.edge.tensors import packed_bytes
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Board, FirmwareManifest, Job
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.store import Store
from tinymlaas.targets import get_board, load_boards

#: Boards profiled at once (each compiles, builds and boots; the machine has two cores).
WORKERS = 2


def boards_for(settings: Settings, targets: list[str] | None) -> list[Board]:
    if targets:
        return [get_board(settings.targets_dir, t) for t in dict.fromkeys(targets)]
    return list(load_boards(settings.targets_dir).values())


def profile(
    settings: Settings,
    model: bytes,
    boards: list[Board],
    *,
    model_id: str | None = None,
    progress: Progress = no_progress,
) -> Profile:
    """Every board, two at a time; a board that cannot take the model says why in its row."""
    start = time.monotonic()
    done: list[BoardProfile] = []
    with (
        tempfile.TemporaryDirectory(prefix="profile-", dir=_work(settings)) as tmp,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        futures = [pool.submit(_board, settings, model, b, Path(tmp) / b.name) for b in boards]
        for future in futures:
            done.append(future.result())
            progress(
                f"{done[-1].board}: {'fits' if done[-1].fits else 'does not fit'}", len(done) / len(boards)
            )
    return Profile(
        model_id=model_id,
        model_sha256=hashlib.sha256(model).hexdigest(),
        boards=done,
        seconds=round(time.monotonic() - start, 2),
    )


def _work(settings: Settings) -> Path:
    path = settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_build(settings: Settings, model: bytes, board: Board) -> Path | None:
    """Where a build of this model for this board is kept: keyed by the model, the board and the
    builder image's tag (the hash of its inputs, the compiler's code among them), so a warm profile
    boots what an earlier one built. Only for the Docker builder, whose image names its inputs."""
    if settings.build.executor != "docker":
        return None
    from tinymlaas.images import image_ref

    parts = [hashlib.sha256(model).digest(), board.model_dump_json().encode(),
             image_ref(settings, board.builder.image).encode()]
    return settings.data_dir / "cache" / "profile" / hashlib.sha256(b"|".join(parts)).hexdigest()[:24]


def _board(settings: Settings, model: bytes, board: Board, work: Path) -> BoardProfile:
    from tinymlaas.plugins.registry import builder_plugin
    from tinymlaas.services.compile import compile_model, read_module
    from tinymlaas.services.staging import staged_dir

    start = time.monotonic()
    row = BoardProfile(board=board.name, cpu=board.cpu, clock_hz=board.clock_hz, fits=False,
                       compiler=board.default_compiler, flash_total=board.flash_bytes,
                       ram_total=board.ram_bytes)
    cache = _cached_build(settings, model, board)
    try:
        if cache is not None and (cache / "firmware" / "manifest.json").is_file():
            module = read_module(cache / "module")
            fw = FirmwareManifest.model_validate_json((cache / "firmware" / "manifest.json").read_text())
            built = cache
        else:
            module = compile_model(model, board, work / "module", name="model")
            fw = builder_plugin(settings.build.executor)().build(work / "module", board, work / "firmware")
            built = work
            if cache is not None:
                with staged_dir(cache) as tmp:
                    shutil.copytree(work / "module", tmp / "module")
                    shutil.copytree(work / "firmware", tmp / "firmware")
        row.arena_bytes = module.memory.arena_bytes
    except InvalidInput as exc:  # does not fit, or an op or dtype the board's compiler lacks
        row.reason = exc.message
        row.seconds = round(time.monotonic() - start, 2)
        return row
    row.fits = True
    row.flash_bytes, row.ram_bytes = fw.sizes.get("flash"), fw.sizes.get("ram")
    _measure(board, built / "firmware", packed_bytes([t.model_dump() for t in module.inputs]), row)
    shutil.rmtree(work, ignore_errors=True)
    row.seconds = round(time.monotonic() - start, 2)
    return row


def _measure(board: Board, firmware: Path, input_bytes: int, row: BoardProfile) -> None:
    """One inference on the board's emulator: its instruction count and implied latency."""
    from tinymlaas.services.mcu_device import McuDevice, emulator_for

    if board.device is not None:
        row.measured = "a container board: no emulator counts its instructions"
        return
    try:
        row.emulator = emulator_for(board).name
    except InvalidInput as exc:
        row.measured = exc.message
        return
    try:
        with McuDevice(board, firmware, emulator=row.emulator) as device:
            result = device.infer(np.zeros(input_bytes, dtype=np.int8).tobytes())
    except TinyMLaaSError as exc:
        row.measured = f"the emulator failed: {exc.message}"
        return
    row.instructions = result.instructions
    if result.instructions and board.clock_hz:
        row.latency_ms = round(result.instructions / board.clock_hz * 1000, 3)


def plot(result: Profile, title: str) -> bytes:
    """Latency per board (bars), boards that do not fit or were not measured named as such."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.boards
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    names = [f"{r.board} ({r.cpu}, {r.clock_hz / 1e6:g} MHz)" if r.clock_hz else r.board for r in rows]
    values = [r.latency_ms or 0.0 for r in rows]
    bars = ax.barh(names, values, color=["tab:blue" if r.fits else "tab:red" for r in rows])
    top = max(values, default=0.0) or 1.0
    for bar, r in zip(bars, rows, strict=True):
        note = (
            f"{r.latency_ms:g} ms, {r.instructions:,} instructions"
            if r.latency_ms is not None
            else "does not fit"
            if not r.fits
            else "fits; not measured"
        )
        ax.text(
            bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8
        )
    ax.set_xlabel("latency per inference at the board's clock (ms)")
    ax.set_xlim(0, top * 1.6)
    ax.invert_yaxis()
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def profile_model(
    store: Store, settings: Settings, req: ProfileRequest, progress: Progress = no_progress
) -> Profile:
    model = store.model(req.model)
    result = profile(
        settings,
        store.artifacts.get(model.sha256).read_bytes(),
        boards_for(settings, req.targets),
        model_id=model.id,
        progress=progress,
    )
    result.plot_sha256 = store.artifacts.put_bytes(
        plot(result, f"{model.name}:{model.version} across boards")
    )
    return result


def start_profile(store: Store, settings: Settings, runner: JobRunner, req: ProfileRequest) -> Job:
    store.model(req.model)
    boards_for(settings, req.targets)  # unknown boards are refused now
    job = store.new_job("profile")
    runner.submit(job, lambda p: profile_model(store, settings, req, p).model_dump(mode="json"))
    return job
