"""A logged-in browser's view of a test service, without a browser."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient

PASSWORD = "a long enough password"


def bench_pipeline(model: str) -> tuple[str, str]:
    """A pipeline for the pages' tests, and its copy with three mistakes (a misspelt field, a board
    and a group that do not exist). ``model`` is built for x86 on this machine (no Docker, seconds)
    and sent to group 'bench', whose device never connects: its update fails, so the rollout
    pauses until someone ends it."""
    good = f"""\
name: hello-bench
model: {model}
compile:
  version: 2.0.0
  targets:
    - board: x86-tflm
      builder: local
deploy:
  group: bench
  kind: model
  waves: ["rest"]
"""
    wrong = good.replace("  version: 2.0.0", "  verison: 2.0.0").replace(
        "      builder: local\n", "      builder: local\n    - board: esp32\n").replace(
        "group: bench", "group: bench-b")
    return good, wrong



@dataclass
class Web:
    client: TestClient
    admin_token: str

    def login(self, name: str, password: str = PASSWORD) -> TestClient:
        """This client, logged in through the login form (the session cookie set)."""
        self.client.cookies.clear()
        r = self.client.post("/ui/login", data={"name": name, "password": password})
        assert r.status_code == 303, r.text
        return self.client

    def csrf(self) -> dict[str, str]:
        """The header the app's pages put on every change (read from a page, as htmx does)."""
        page = self.client.get("/ui/operator/devices").text
        token = page.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
        return {"X-CSRF-Token": token}
