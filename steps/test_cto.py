"""Steps for the CTO's dry-run: the real service, devices, LwM2M or HTTP pull, QEMU and Docker."""

from __future__ import annotations

from pathlib import Path

from pytest_bdd import parsers, scenarios, then, when

from tinymlaas.config import Settings
from tinymlaas.services.lifecycle import BoardRun, dry_run

scenarios("cto")


@when(parsers.parse('the CTO runs the lifecycle dry-run on "{a}" and "{b}"'), target_fixture="runs")
def run(settings: Settings, images: dict[str, bool], tmp_path: Path, a: str, b: str
        ) -> dict[str, BoardRun]:
    return {r.board: r for r in dry_run(settings, tmp_path, [a, b])}


@when(parsers.parse('the CTO runs the lifecycle dry-run on "{a}" and "{b}" over "{orchestrator}"'),
      target_fixture="runs")
def run_over(settings: Settings, images: dict[str, bool], tmp_path: Path, a: str, b: str,
             orchestrator: str) -> dict[str, BoardRun]:
    """Polls are held 1 s, not 20: the x86 device's new image is healthy only once its first poll
    after the reboot is answered (the run's FOTA took 28 s with 20, 13 s with 1)."""
    pull = settings.http_pull.model_copy(update={"poll_wait_s": 1.0})
    held = settings.model_copy(update={"http_pull": pull})
    return {r.board: r for r in dry_run(held, tmp_path, [a, b], orchestrator=orchestrator)}


def _check(run: BoardRun, prefix: str) -> str:
    return next(c.detail for c in run.checks if c.step.startswith(prefix))


@then("every step passes on both boards")
def all_pass(runs: dict[str, BoardRun]) -> None:
    for r in runs.values():
        assert r.ok and len(r.checks) == 7, [(c.step, c.ok, c.detail) for c in r.checks]


@then(parsers.parse("each device {how} and reported its RAM, flash and CPU"))
def joined(runs: dict[str, BoardRun], how: str) -> None:
    for r in runs.values():
        assert _check(r, "boot") == how.removeprefix("joined ")
        caps = _check(r, "read capabilities")
        assert "B RAM" in caps and "B flash" in caps and "firmware 1.0.0" in caps


@then("the seven inferences matched TFLM before and after the firmware update")
def inferences(runs: dict[str, BoardRun]) -> None:
    for r in runs.values():
        assert "1.0.0 -> 1.1.0" in _check(r, "FOTA")
        before, after = _check(r, "7 inferences, bit"), _check(r, "7 inferences after")
        assert before.split(",")[0:7] == after.split(",")[0:7]


@then(parsers.parse('the retrained model was swapped live on "{board}"'))
def live(runs: dict[str, BoardRun], board: str) -> None:
    assert "swapped live" in _check(runs[board], "SOTA")


@then(parsers.parse('on "{board}" it was delivered by FOTA because the MCU cannot swap models live'))
def fallback(runs: dict[str, BoardRun], board: str) -> None:
    detail = _check(runs[board], "SOTA")
    assert "cannot swap models live" in detail and "1.1.0 -> 1.2.0" in detail
