"""Device-side pieces: the package download (Range resume, SHA-256) and Object 5's state machine."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiocoap import error as coap_error

from tinymlaas.edge.lwm2m.agent import DownloadError, FirmwareUpdate, check_uri, download
from tinymlaas.edge.lwm2m.vocab import FwResult, FwState

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Files:
    """A tiny HTTP server with Range support that can break a connection on purpose."""

    def __init__(self) -> None:
        self.served: dict[str, bytes] = {SHA: PAYLOAD}
        self.break_first_after: int | None = None
        self.ranges: list[str | None] = []
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.split("?")[0].rsplit("/", 1)[-1]
                data = files.served.get(name)
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                files.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if files.break_first_after is not None:
                    body, files.break_first_after = body[: files.break_first_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-download
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def files() -> Iterator[Files]:
    f = Files()
    yield f
    f.http.shutdown()


def test_download_checks_the_hash_in_the_uri(files: Files, tmp_path: Path) -> None:
    dest = download(f"{files.base}/artifacts/{SHA}", tmp_path / "fw", max_bytes=1 << 20)
    assert dest.read_bytes() == PAYLOAD
    files.served["name"] = PAYLOAD
    frag = download(f"{files.base}/any/name#sha256={SHA}", tmp_path / "fw2", max_bytes=1 << 20)
    assert frag.read_bytes() == PAYLOAD


def test_a_broken_download_resumes_with_range(files: Files, tmp_path: Path) -> None:
    files.break_first_after = 30_000
    dest = download(f"{files.base}/p/{SHA}", tmp_path / "fw", max_bytes=1 << 20)
    assert dest.read_bytes() == PAYLOAD
    assert files.ranges[0] is None and files.ranges[1] == "bytes=30000-"


@pytest.mark.parametrize(("uri", "result"), [
    ("ftp://host/" + SHA, FwResult.unsupported_protocol),
    ("not a uri", FwResult.invalid_uri),
    ("http://127.0.0.1:1/no-digest", FwResult.invalid_uri),
])
def test_uri_refusals_map_to_update_results(uri: str, result: FwResult) -> None:
    with pytest.raises(DownloadError) as exc:
        check_uri(uri)
    assert exc.value.result is result


def test_corruption_too_big_and_missing(files: Files, tmp_path: Path) -> None:
    bad = bytearray(PAYLOAD)
    bad[5000] ^= 1
    files.served[SHA] = bytes(bad)
    with pytest.raises(DownloadError) as exc:
        download(f"{files.base}/p/{SHA}", tmp_path / "fw", max_bytes=1 << 20)
    assert exc.value.result is FwResult.integrity_failure and not (tmp_path / "fw").exists()
    files.served[SHA] = PAYLOAD
    with pytest.raises(DownloadError) as exc:
        download(f"{files.base}/p/{SHA}", tmp_path / "fw", max_bytes=1000)
    assert exc.value.result is FwResult.not_enough_flash
    with pytest.raises(DownloadError) as exc:
        download(f"{files.base}/p/{'0' * 64}", tmp_path / "fw", max_bytes=1 << 20)
    assert exc.value.result is FwResult.invalid_uri


class InPlace:
    """A firmware backend that installs in place (like the MCU bridge), recording what it got."""

    max_bytes = 1 << 20

    def __init__(self, fail: bool = False) -> None:
        self.installed: bytes | None = None
        self.fail = fail

    def check(self, image: Path) -> tuple[str, str]:
        if image.read_bytes()[:2] != PAYLOAD[:2]:
            raise ValueError("not for this device")
        return "fw", "2.0"

    async def install(self, image: Path) -> None:
        if self.fail:
            raise RuntimeError("flash write failed")
        self.installed = image.read_bytes()


async def _until(fw: FirmwareUpdate, state: FwState, timeout: float = 10) -> None:
    async def wait() -> None:
        while fw.state is not state:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_object5_state_machine(files: Files, tmp_path: Path, anyio_backend: str) -> None:
    backend = InPlace()
    fw = FirmwareUpdate(backend, tmp_path)
    with pytest.raises(coap_error.MethodNotAllowed):
        await fw.execute(2, "")  # Update needs Downloaded
    fw.write(1, f"{files.base}/p/{SHA}")
    assert fw.state is FwState.downloading
    with pytest.raises(coap_error.MethodNotAllowed):
        fw.write(1, f"{files.base}/p/{SHA}")  # no second download while one runs
    await _until(fw, FwState.downloaded)
    assert fw.values[6] == "fw" and fw.values[7] == "2.0"
    await fw.execute(2, "")
    assert fw.state is FwState.updating
    await _until(fw, FwState.idle)
    assert fw.values[5] == FwResult.success and backend.installed == PAYLOAD
    # Cancel after a download, and a reset by an empty URI
    fw.write(1, "")
    fw.write(1, f"{files.base}/p/{SHA}")
    await _until(fw, FwState.downloaded)
    await fw.execute(10, "")
    assert fw.state is FwState.idle and fw.values[5] == FwResult.cancelled
    fw.write(1, "")
    assert fw.values[5] == FwResult.initial
    # An unsupported protocol is reported in Update Result; the Write itself succeeds.
    fw.write(1, "coaps://127.0.0.1/" + SHA)
    assert fw.state is FwState.idle and fw.values[5] == FwResult.unsupported_protocol


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_object5_failures(files: Files, tmp_path: Path, anyio_backend: str) -> None:
    other = bytes(reversed(PAYLOAD))
    files.served[hashlib.sha256(other).hexdigest()] = other
    fw = FirmwareUpdate(InPlace(fail=True), tmp_path)
    fw.write(1, f"{files.base}/p/{hashlib.sha256(other).hexdigest()}")
    await _until(fw, FwState.idle)
    assert fw.values[5] == FwResult.unsupported_package  # downloaded, but not for this device
    fw.write(1, "")
    fw.write(0, PAYLOAD)  # push delivery
    assert fw.state is FwState.downloaded
    await fw.execute(2, "")
    await _until(fw, FwState.downloaded)  # install failed: the old firmware keeps running
    assert fw.values[5] == FwResult.update_failed
