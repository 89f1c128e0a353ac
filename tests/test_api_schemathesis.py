"""schemathesis against the API's own OpenAPI schema: no server errors, every answer as documented
(status codes, content types, bodies, headers), bad data refused.

Bounded (a few examples per operation) so it runs in CI in a minute or two; the calls are
made as the first admin, so authorization does not hide the routes' own behaviour.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from _auth import as_admin
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings

#: One service per orchestrator: each brings routes of its own.
APPS = {name: (data, create_app(Settings(data_dir=data, orchestrator=name, lwm2m={"port": 0},
                                          http_pull={"poll_wait_s": 0.05})))
        for name in ("lwm2m", "http-pull")
        for data in [Path(tempfile.mkdtemp(prefix=f"tinymlaas-schemathesis-{name}-"))]}
OPERATIONS = [(name, result.ok()) for name, (_, app) in APPS.items()
              for result in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()]


@pytest.fixture(scope="module")
def tokens() -> Iterator[dict[str, str]]:
    with TestClient(APPS["lwm2m"][1]) as a, TestClient(APPS["http-pull"][1]) as b:  # lifespans run
        yield {"lwm2m": as_admin(a, APPS["lwm2m"][0]).headers["Authorization"],
               "http-pull": as_admin(b, APPS["http-pull"][0]).headers["Authorization"]}


@pytest.mark.parametrize(("orchestrator", "operation"), OPERATIONS,
                         ids=[f"{name} {op.label}" for name, op in OPERATIONS])
def test_the_api_keeps_to_its_schema(orchestrator: str, operation: schemathesis.APIOperation,
                                     tokens: dict[str, str]) -> None:
    token = tokens[orchestrator]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        # A schema-valid request may still be refused for what a schema cannot say (a file
        # that is no model, exactly one of two fields): 422 then, never a 5xx or a surprise.
        case.call_and_validate(headers={"Authorization": token},
                               excluded_checks=[checks.positive_data_acceptance])

    run()
