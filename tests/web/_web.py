"""A logged-in browser's view of a test service, without a browser."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient

PASSWORD = "a long enough password"



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
