"""Accounts: the first administrator of a new service, shown once."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from pathlib import Path

from tinymlaas.auth import Role
from tinymlaas.store import Store

log = logging.getLogger(__name__)
INITIAL_ADMIN = "initial-admin.json"


def first_admin(store: Store, data_dir: Path, *, announce: bool = True) -> Path | None:
    """On a service with no users: create ``admin`` with a password and a token, print both once
    on stderr and keep them in ``data_dir/initial-admin.json`` (mode 600) for scripts; delete the
    file once read. Returns the file's path when it made one."""
    if store.users.count():
        return None
    password = secrets.token_urlsafe(18)
    store.users.create("admin", Role.admin, password=password)
    token = store.users.issue_token("admin", "initial").token
    path = data_dir / INITIAL_ADMIN
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"user": "admin", "password": password, "token": token}, fh)
    if announce:
        print(f"tinymlaas: created the first user, 'admin' (password {password}, API token {token}); "
              f"also in {path} (mode 600): keep them, then delete the file", file=sys.stderr, flush=True)
    return path


def initial_admin_token(data_dir: Path) -> str:
    """The first admin's token from ``initial-admin.json`` (for scripts that start a service)."""
    token: str = json.loads((data_dir / INITIAL_ADMIN).read_text())["token"]
    return token
