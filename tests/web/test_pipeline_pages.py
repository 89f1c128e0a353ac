"""The operator's pipeline pages without a browser, against the same services as /pipelines: a
file's problems shown each with its line (typed or uploaded), a run's job graph stage by stage,
its failure and the re-run from the failed stage, and who may do what."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from _fleet import wait_until
from _web import Web, bench_pipeline

HOME = "/ui/operator/pipelines"

GOOD, WRONG = bench_pipeline("hello_world:1")


@pytest.fixture
def bench(web: Web, hello_world: bytes) -> Web:
    """hello_world registered, a device 'bench-1' registered (never connected) in group 'bench'."""
    auth = {"Authorization": f"Bearer {web.admin_token}"}
    client = web.client
    assert client.post("/models", files={"file": ("hello_world.tflite", hello_world)},
                       data={"name": "hello_world"}, headers=auth).status_code == 201
    assert client.post("/devices", json={"endpoint": "bench-1", "board": "x86-tflm", "tags": ["bench"]},
                       headers=auth).status_code == 201
    assert client.post("/groups", json={"name": "bench", "tags": ["bench"]}, headers=auth).status_code == 201
    return web


def api_problems(web: Web, source: str, filename: str) -> list[dict[str, Any]]:
    """What the API says of the file (a 422 with every problem)."""
    r = web.client.post("/pipelines/validate", json={"source": source, "filename": filename},
                        headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 422, r.text
    errors: list[dict[str, Any]] = r.json()["details"]["errors"]
    return errors


def shown(page: str) -> list[tuple[str, str]]:
    """The problems as the page lists them: ``FILE:LINE:COLUMN`` and the message."""
    return [(where, html.unescape(message)) for where, message in re.findall(
        r'<a href="#p-source" class="mono"[^>]*>([^<]+)</a> <code>[^<]*</code>: <span>([^<]*)</span>', page)]


def test_every_problem_of_a_file_is_shown_with_its_line_in_the_apis_words(bench: Web) -> None:
    client = bench.login("olga")
    csrf = bench.csrf()
    expected = api_problems(bench, WRONG, "bench.yaml")
    lines = WRONG.splitlines()
    assert [e["line"] for e in expected] == [lines.index(t) + 1 for t in (
        "  verison: 2.0.0", "    - board: esp32", "  group: bench-b")]
    r = client.post(f"{HOME}/validate", data={"source": WRONG, "filename": "bench.yaml"}, headers=csrf)
    assert r.status_code == 200, r.text
    assert "3 problems in bench.yaml" in r.text
    assert shown(r.text) == [(f"bench.yaml:{e['line']}:{e['column']}", e["message"]) for e in expected]
    assert f"{expected[1]['line']} |     - board: esp32" in html.unescape(r.text)  # the line itself
    # Run refuses it the same way, and nothing runs.
    r = client.post(f"{HOME}/runs", data={"source": WRONG, "filename": "bench.yaml"}, headers=csrf)
    assert r.status_code == 200 and "HX-Redirect" not in r.headers
    assert shown(r.text) == [(f"bench.yaml:{e['line']}:{e['column']}", e["message"]) for e in expected]
    assert client.get("/pipelines/runs").json() == []
    # An uploaded file is named by its own name, and comes back into the text area to be fixed.
    r = client.post(f"{HOME}/validate", files={"file": ("line-b.yml", WRONG.encode())},
                    data={"source": "", "filename": "pipeline.yaml"}, headers=csrf)
    assert [where.split(":")[0] for where, _ in shown(r.text)] == ["line-b.yml"] * 3
    assert '<textarea id="p-source"' in r.text and 'hx-swap-oob="true"' in r.text
    assert html.escape("group: bench-b") in r.text and 'value="line-b.yml"' in r.text
    # Fixed: what it will do.
    r = client.post(f"{HOME}/validate", data={"source": GOOD, "filename": "bench.yaml"}, headers=csrf)
    assert "bench.yaml is valid" in r.text and "compile → deploy" in r.text
    assert "bench: 1 device now (bench-1)" in r.text
    r = client.post(f"{HOME}/validate", files={"file": ("x.yaml", b"\xff\xfe")}, headers=csrf)
    assert r.status_code == 422 and r.json()["detail"] == "x.yaml: a pipeline file is UTF-8 text"


def run_of(web: Web, run_id: str) -> dict[str, Any]:
    r = web.client.get(f"/pipelines/runs/{run_id}", headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def cancel_its_rollout(web: Web, run_id: str) -> str:
    """The deploy stage's rollout, once its device failed and it paused; cancelled as an operator would."""
    auth = {"Authorization": f"Bearer {web.admin_token}"}

    def paused() -> str | None:
        deploy = run_of(web, run_id)["stages"][-1]
        rid = deploy["artifacts"].get("rollout_id")
        return rid if rid and web.client.get(f"/rollouts/{rid}", headers=auth).json()["state"] == "paused" \
            else None

    rid: str = wait_until(paused, 120, "the rollout pausing")
    r = web.client.post(f"/rollouts/{rid}/cancel", json={"reason": "bench is off"}, headers=auth)
    assert r.is_success, r.text
    wait_until(lambda: run_of(web, run_id)["state"] == "failed", 60, "the run failing")
    return rid


def test_a_run_is_shown_stage_by_stage_and_re_run_from_the_stage_that_failed(bench: Web) -> None:
    client = bench.login("olga")
    csrf = bench.csrf()
    r = client.post(f"{HOME}/runs", data={"source": GOOD, "filename": "bench.yaml"}, headers=csrf)
    assert r.status_code == 204, r.text
    url = r.headers["HX-Redirect"]
    run_id = url.rsplit("/", 1)[1]
    assert url == f"{HOME}/runs/{run_id}"
    page = client.get(url).text
    assert f'sse-connect="{url}/events"' in page  # live while it runs
    assert page.index('data-testid="stage-compile"') < page.index('data-testid="stage-deploy"')
    assert 'data-testid="stage-dataset"' not in page  # a model given: no dataset, train, quantize

    first = cancel_its_rollout(bench, run_id)
    page = client.get(url).text
    assert "sse-connect" not in page  # over: nothing to follow
    state = dict(re.findall(r'data-testid="stage-(\w+)-state"><span class="state state-(\w+)"', page))
    assert state == {"compile": "succeeded", "deploy": "failed"}
    run = run_of(bench, run_id)
    error = html.escape(run["stages"][-1]["error"])
    assert error.startswith(f"rollout {first} cancelled") and error in page
    assert re.search(r'aria-label="compile progress"[^>]*aria-valuenow="100"', page)
    build = run["stages"][0]["artifacts"]["builds"]["x86-tflm"]
    assert f'href="/ui/operator/builds/{build}"' in page and f'href="/ui/fleet/rollouts/{first}"' in page
    assert "Re-run from the failed stage" in page
    assert f'href="{HOME}/runs/{run_id}"' in client.get(HOME).text
    # Its file, to change and run as a new pipeline.
    assert f'href="{HOME}?from_run={run_id}"' in page
    editor = html.unescape(client.get(HOME, params={"from_run": run_id}).text)
    assert f">{GOOD}</textarea>" in editor and 'value="bench.yaml"' in editor
    # The stream of a run that is over: the graph once, then done.
    events = client.get(f"{url}/events").text
    assert events.count("event: run") == 1 and events.rstrip().endswith("event: done\ndata:")

    r = client.post(f"{url}/rerun", headers=csrf)
    assert r.status_code == 204 and r.headers["HX-Redirect"] == url
    again = run_of(bench, run_id)
    assert again["attempt"] == 2 and again["stages"][0] == run["stages"][0]  # compile kept as it was
    r = client.post(f"{url}/rerun", headers=csrf)  # refused in the API's words
    detail = client.post(f"/pipelines/runs/{run_id}/rerun", headers=csrf).json()["detail"]
    assert r.status_code == 409 and r.json()["detail"] == detail
    assert "only a failed or cancelled run is re-run" in detail
    assert "Cancel the run" in client.get(url).text  # running: it can be stopped
    r = client.post(f"{url}/cancel", headers=csrf)
    assert r.status_code == 204, r.text
    wait_until(lambda: run_of(bench, run_id)["state"] == "cancelled", 60, "the run stopping")
    page = client.get(url).text
    state = dict(re.findall(r'data-testid="stage-(\w+)-state"><span class="state state-(\w+)"', page))
    assert state == {"compile": "succeeded", "deploy": "cancelled"} and "cancelled by olga" in page
    assert "Re-run from the cancelled stage" in page and "Cancel the run" not in page
    r = client.post(f"{url}/cancel", headers=csrf)  # refused in the API's words
    assert r.status_code == 409 and "only a running run is cancelled" in r.json()["detail"]

    bench.login("viewer")
    page = client.get(url).text
    assert "deploy" in page and "Re-run from the" not in page
    assert client.post(f"{url}/rerun", headers=bench.csrf()).status_code == 403
    assert client.post(f"{url}/cancel", headers=bench.csrf()).status_code == 403


def test_who_may_check_and_run_a_pipeline(bench: Web) -> None:
    client = bench.login("viewer")
    page = client.get(HOME).text
    assert "No pipeline has run yet" in page and "<textarea" not in page
    r = client.post(f"{HOME}/validate", data={"source": GOOD}, headers=bench.csrf())
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    client = bench.login("ana")  # a data scientist checks files; running one is an operator's
    page = client.get(HOME).text
    assert ">Validate</button>" in page and ">Run</button>" not in page
    r = client.post(f"{HOME}/validate", data={"source": GOOD, "filename": "bench.yaml"}, headers=bench.csrf())
    assert "bench.yaml is valid" in r.text
    r = client.post(f"{HOME}/runs", data={"source": GOOD}, headers=bench.csrf())
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    assert client.get(f"{HOME}/runs/nope").status_code == 404
    assert client.get(HOME, params={"from_run": "nope"}).status_code == 404
