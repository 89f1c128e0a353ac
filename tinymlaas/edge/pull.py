"""The device side of the HTTP pull orchestrator (:mod:`tinymlaas.orchestrators.http_pull`).

It drives the same backends as the LwM2M objects (firmware, module slot,
inference runtime), so a device speaks either protocol with one set of parts.
Two loops share one queue of things to report: the long poll, which waits for
commands, and a reporter, which sends results and inferences as soon as they
exist (a poll that does not wait). Commands run one at a time, in order; one
seen before is not run again. Standard library only: it runs in the firmware.

Hybrid inference (:mod:`tinymlaas.edge.hybrid`): a ``hybrid`` command sets the
escalation policy; an uncertain inference is escalated with a request of its
own to ``POST /ota/{endpoint}/escalate`` (the answer is needed now, not at the
next poll), with the same token; each poll reports the policy and the counts.

A firmware command survives the reboot it causes: its id is written to
``ota-pending.json`` before the install, and the next boot reports its result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinymlaas.edge.hybrid import HybridRuntime, Policy
from tinymlaas.edge.lwm2m.agent import (
    DownloadError,
    FirmwareBackend,
    InferenceRuntime,
    ModuleBackend,
    download,
)
from tinymlaas.edge.lwm2m.vocab import SW_FROM_DOWNLOAD, FwResult, SwResult, named_capabilities
from tinymlaas.edge.signing import SignatureError

log = logging.getLogger("tinymlaas.edge.pull")
PENDING = "ota-pending.json"


class Seen:
    """The ids of the last ``size`` commands: enough to ignore a re-delivery (the service only
    re-sends what is still queued), without growing for as long as the device runs."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._ids: dict[str, None] = {}

    def add(self, cid: str) -> bool:
        """False if ``cid`` was seen already."""
        if cid in self._ids:
            return False
        self._ids[cid] = None
        if len(self._ids) > self.size:
            del self._ids[next(iter(self._ids))]
        return True

    def __len__(self) -> int:
        return len(self._ids)


class Refused(Exception):
    """The service answered 4xx: wrong credentials or a malformed poll."""


class PullAgent:
    """Polls ``{base}/ota/{endpoint}/poll`` and runs what comes back.

    ``device()`` returns the Device object's resources (3/0/x, as the LwM2M side
    has them); with the inference runtime's they make the status each poll
    reports. ``boot_result`` is how the last firmware update ended, as the boot
    ROM left it.
    """

    def __init__(self, base_url: str, endpoint: str, *, device: Callable[[], dict[int, Any]],
                 firmware: FirmwareBackend, modules: ModuleBackend | None, inference: InferenceRuntime,
                 workdir: Path, token: str | None = None, boot_result: FwResult | None = FwResult.initial,
                 boot_detail: str = "", wait_s: float = 20.0) -> None:
        self.url = f"{base_url.rstrip('/')}/ota/{endpoint}/poll"
        self.escalate_url = f"{base_url.rstrip('/')}/ota/{endpoint}/escalate"
        self.endpoint = endpoint
        self.device = device
        self.firmware, self.modules, self.inference = firmware, modules, inference
        self.hybrid = HybridRuntime(inference, self._escalate, workdir / "hybrid.json")
        self.workdir = workdir
        self.token = token
        self.wait_s = wait_s
        self.count = 0
        self.last_latency_us: int | None = None
        self.last_instructions: int | None = None
        self.seen = Seen()
        # Number the polls of this start: the service keeps the newest status when two cross.
        self.boot, self.seq = secrets.token_hex(4), 0
        self._accepted: list[str] = []
        self._results: list[dict[str, Any]] = []
        self._inferences: list[dict[str, Any]] = []
        self._work: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self.connected = asyncio.Event()
        #: The firmware update that rebooted us, until its result is known (the image on trial).
        self._boot_command: str | None = None
        pending = workdir / PENDING
        if pending.is_file():  # the firmware update that rebooted us: say how it ended
            # Kept until then: an image on trial that dies leaves it to the one rolled back to.
            self._boot_command = json.loads(pending.read_text())["id"]
            self.seen.add(self._boot_command)
            if boot_result is not None:
                self.report_boot(boot_result, boot_detail)

    def report_boot(self, result: FwResult, detail: str = "") -> None:
        """Say how the update that rebooted the device ended (at once, or when the new image has
        confirmed itself)."""
        if self._boot_command is None:
            return
        ok = result == FwResult.success
        self._result(self._boot_command, ok, code=int(result),
                     detail=detail or ("" if ok else "the boot ROM rolled back to the previous image"),
                     states=["downloaded", "updating", "idle"])
        self._boot_command = None
        (self.workdir / PENDING).unlink(missing_ok=True)

    # -- what gets reported ---------------------------------------------------------------
    def _result(self, cid: str, ok: bool, **fields: Any) -> None:
        if not ok:
            log.warning("command %s failed: %s", cid, fields.get("detail", ""))
        self._results.append({"id": cid, "ok": ok, **fields})
        self._dirty.set()

    def record(self, tensor: bytes, output: bytes, latency_us: int,
               instructions: int | None, escalated: bool | None = None) -> dict[str, Any]:
        """Report one inference (also those that came in another way, e.g. the device's HTTP)."""
        self.count += 1
        self.last_latency_us, self.last_instructions = int(latency_us), instructions
        inf = {"count": self.count, "input": base64.b64encode(tensor).decode(),
               "output": base64.b64encode(output).decode(), "latency_us": int(latency_us),
               "instructions": instructions, "escalated": escalated}
        self._inferences.append(inf)
        self._dirty.set()
        return inf

    def _status(self) -> dict[str, Any]:
        caps = named_capabilities(self.device(), self.inference.capabilities())
        return {**caps, "fota": True, "sota": self.modules is not None, "inference_count": self.count,
                "latency_us": self.last_latency_us, "instructions": self.last_instructions,
                "hybrid": self.hybrid.status()}

    # -- HTTP ------------------------------------------------------------------------------
    def _post(self, body: dict[str, Any], timeout: float, url: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url or self.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                reply: dict[str, Any] = json.loads(resp.read())
                return reply
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                detail = exc.read().decode(errors="replace")
                with contextlib.suppress(ValueError, AttributeError):
                    detail = json.loads(detail).get("detail", detail)
                raise Refused(f"HTTP {exc.code}: {detail}") from exc
            raise

    async def _poll(self, wait_s: float) -> None:
        accepted, results, inferences = self._accepted, self._results, self._inferences
        self.seq += 1
        body = {"status": self._status(), "boot": self.boot, "seq": self.seq, "accepted": accepted,
                "results": results, "inferences": inferences, "wait_s": wait_s}
        self._accepted, self._results, self._inferences = [], [], []
        try:
            reply = await asyncio.to_thread(self._post, body, wait_s + 30.0)
        except BaseException:  # not delivered: report it with the next poll
            self._accepted = accepted + self._accepted
            self._results = results + self._results
            self._inferences = inferences + self._inferences
            raise
        if not self.connected.is_set():
            log.info("polling %s as %s", self.url, self.endpoint)
            self.connected.set()
        for cmd in reply.get("commands", []):
            if self.seen.add(cmd["id"]):
                self._accepted.append(cmd["id"])
                self._work.put_nowait(cmd)
                self._dirty.set()

    async def _poller(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._poll(self.wait_s)
                backoff = 0.5
            except Refused as exc:
                self.connected.clear()
                log.warning("the server refused the poll: %s", exc)
                await asyncio.sleep(5.0)
            except (OSError, urllib.error.URLError, TimeoutError, ValueError) as exc:
                self.connected.clear()
                log.warning("poll failed (%s); again in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _reporter(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not (self._accepted or self._results or self._inferences):
                continue
            try:
                await self._poll(0.0)
            except (Refused, OSError, urllib.error.URLError, TimeoutError, ValueError) as exc:
                log.warning("report failed (%s); trying again", exc)
                await asyncio.sleep(1.0)
                self._dirty.set()  # unless the long poll took it meanwhile

    # -- commands ---------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            cmd = await self._work.get()
            try:
                await {"infer": self._infer, "firmware": self._fota, "model": self._sota,
                       "hybrid": self._set_hybrid}[cmd["op"]](cmd)
            except KeyError:
                self._result(cmd["id"], False, detail=f"unknown command {cmd['op']!r}")
            except Exception as exc:  # a command's failure is reported, the device keeps serving
                log.exception("command %s failed", cmd["id"])
                self._result(cmd["id"], False, detail=f"{type(exc).__name__}: {exc}")

    async def _infer(self, cmd: dict[str, Any]) -> None:
        tensor = base64.b64decode(cmd.get("input") or "")
        try:
            output, latency, instructions, escalated = await self.hybrid.run(tensor)
        except ValueError as exc:
            self._result(cmd["id"], False, detail=str(exc))
            return
        self._result(cmd["id"], True,
                     inference=self.record(tensor, output, latency, instructions, escalated))

    async def _set_hybrid(self, cmd: dict[str, Any]) -> None:
        try:
            policy = Policy.parse(cmd.get("policy") or {})
        except (ValueError, TypeError) as exc:
            self._result(cmd["id"], False, detail=str(exc))
            return
        self.hybrid.set_policy(policy)
        self._result(cmd["id"], True, hybrid=self.hybrid.status())

    async def _escalate(self, tensor: bytes) -> list[float]:
        """One uncertain inference to the service's cloud model (the one the policy names)."""
        body = {"input": base64.b64encode(tensor).decode()}
        reply = await asyncio.to_thread(self._post, body, 30.0, self.escalate_url)
        return [float(v) for v in reply["values"]]

    def _fetch(self, cmd: dict[str, Any], dest: Path, max_bytes: int) -> Path:
        url = cmd["url"]
        if cmd.get("sha256") and cmd["sha256"] not in url:
            url += f"#sha256={cmd['sha256']}"
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        return download(url, dest, max_bytes=max_bytes, headers=auth)

    async def _fota(self, cmd: dict[str, Any]) -> None:
        image = self.workdir / "ota-firmware"
        states = ["downloading"]
        try:
            await asyncio.to_thread(self._fetch, cmd, image, self.firmware.max_bytes)
        except DownloadError as exc:
            self._result(cmd["id"], False, code=int(exc.result), detail=str(exc), states=[*states, "idle"])
            return
        states.append("downloaded")
        try:
            name, version = self.firmware.check(image)
        except SignatureError as exc:
            image.unlink(missing_ok=True)
            self._result(cmd["id"], False, code=int(FwResult.integrity_failure), detail=str(exc),
                         states=[*states, "idle"])
            return
        except ValueError as exc:
            image.unlink(missing_ok=True)
            self._result(cmd["id"], False, code=int(FwResult.unsupported_package), detail=str(exc),
                         states=[*states, "idle"])
            return
        log.info("installing %s %s", name, version)
        (self.workdir / PENDING).write_text(json.dumps({"id": cmd["id"]}))
        try:
            await self.firmware.install(image)
        except Exception as exc:  # the old firmware keeps running
            (self.workdir / PENDING).unlink(missing_ok=True)
            self._result(cmd["id"], False, code=int(FwResult.update_failed), detail=str(exc),
                         states=[*states, "updating", "idle"])
            return
        # Installed in place (no reboot): it is done now.
        (self.workdir / PENDING).unlink(missing_ok=True)
        self._result(cmd["id"], True, code=int(FwResult.success), states=[*states, "updating", "idle"])

    async def _sota(self, cmd: dict[str, Any]) -> None:
        fail = self._result
        if self.modules is None:
            fail(cmd["id"], False, code=int(SwResult.unsupported_package), detail="no module slot")
            return
        package = self.workdir / "ota-module"
        try:
            await asyncio.to_thread(self._fetch, cmd, package, self.modules.max_bytes)
        except DownloadError as exc:
            fail(cmd["id"], False, code=int(SW_FROM_DOWNLOAD.get(exc.result, SwResult.connection_lost)),
                 detail=str(exc), states=["download started"])
            return
        try:
            self.modules.check(package)
        except SignatureError as exc:
            fail(cmd["id"], False, code=int(SwResult.integrity_failure), detail=str(exc),
                 states=["downloaded"])
            return
        except ValueError as exc:
            fail(cmd["id"], False, code=int(SwResult.unsupported_package), detail=str(exc),
                 states=["downloaded"])
            return
        try:
            await self.modules.install(package)
        except Exception as exc:
            fail(cmd["id"], False, code=int(SwResult.install_failure), detail=str(exc),
                 states=["delivered"])
            return
        try:
            await self.modules.activate()
        except Exception as exc:
            fail(cmd["id"], False, code=int(SwResult.device_error), detail=str(exc), states=["installed"])
            return
        package.unlink(missing_ok=True)
        self._result(cmd["id"], True, code=int(SwResult.installed),
                     states=["downloaded", "delivered", "installed", "active"])

    # -- run ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (SIGTERM, or a firmware install asking for a reboot)."""
        tasks = [asyncio.create_task(c) for c in (self._poller(), self._reporter(), self._worker())]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
