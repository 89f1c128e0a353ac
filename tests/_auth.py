"""Calling a test's service as its first admin (which every new service makes)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tinymlaas.services.accounts import initial_admin_token


def as_admin(client: TestClient, data_dir: Path) -> TestClient:
    client.headers["Authorization"] = f"Bearer {initial_admin_token(data_dir)}"
    return client
