"""Following the service's jobs, and waiting for what it does, from step definitions (a helper
module, not a test file)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def follow_job(api: httpx.Client, job_id: str, timeout: float = 300) -> list[dict[str, Any]]:
    """Poll a job to its end; every distinct (step, state) seen, the final one last."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if not seen or (job["step"], job["state"]) != (seen[-1]["step"], seen[-1]["state"]):
            seen.append(job)
        if job["state"] in ("succeeded", "failed"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {seen[-1]['state']} after {timeout} s")


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it gives something true, and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")
