"""A pipeline on the live service, end to end: iris from the sample generator, a short training
(TensorFlow), the int8 gate, an x86 build (the local builder), a rollout to a group of simulated
LwM2M devices that take the real OS image; refused first with every mistake on its line, then
run, its rollout cancelled by the operator, and re-run from the deploy stage alone; then the whole
run cancelled while its rollout waits, and re-run again to the end."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fleet import Fleet, wait_until

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.samples import EXAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.lwm2m]

PIPELINE = """\
name: iris-lab
description: iris measurements to the lab's devices
dataset: iris
train:
  epochs: 2
  width: 8
  seed: 3
quantize:
  calibration_samples: 50
  max_accuracy_drop: 0.5
compile:
  version: 2.0.0
  targets:
    - board: x86-tflm
      builder: local
deploy:
  group: lab
  waves: ["1", "rest"]
  manual_approval: true
"""


def wait(check: Any, what: str, timeout: float = 240) -> Any:
    return wait_until(check, timeout, what)


def stage(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["stages"] if s["name"] == name)


def waiting_rollout(api: httpx.Client, run_id: str) -> str:
    """The deploy stage's rollout, once its first wave is done and it waits for an approval."""
    def ready() -> str | None:
        run = api.get(f"/pipelines/runs/{run_id}").json()
        assert run["state"] == "running", run
        rid = stage(run, "deploy")["artifacts"].get("rollout_id")
        return rid if rid and api.get(f"/rollouts/{rid}").json()["state"] == "waiting_approval" else None

    return str(wait(ready, "the rollout's first wave"))


def test_a_pipeline_is_refused_with_its_mistakes_then_runs_and_re_runs_from_the_failed_stage(
        tmp_path: Path, hello_world: bytes) -> None:
    targets = tmp_path / "targets"
    shutil.copytree(Settings().targets_dir, targets)
    (targets / "tiny-m3").mkdir()
    (targets / "tiny-m3" / "board.toml").write_text(  # an LM3S6965 with 2 KB of RAM
        (targets / "lm3s6965evb" / "board.toml").read_text().replace('"lm3s6965evb"', '"tiny-m3"', 1)
        .replace("65_536", "2_048"))
    settings = Settings(data_dir=tmp_path / "service", targets_dir=targets,
                        lwm2m={"port": 0, "ack_timeout_s": 0.5},
                        devices={"flush_s": 0.05})
    with BackgroundServer(settings) as server, server.client(timeout=120) as api, \
            Fleet(api.get("/orchestrator").json()["uri"], tmp_path / "devices", hello_world) as fleet:
        example = EXAMPLES["iris"]
        example.write(tmp_path / "iris.csv", 0, 0)
        assert api.post("/datasets", json={"name": "iris", "task": example.task,
                                           "spec": example.spec.model_dump()}).status_code == 201
        upload = api.post("/datasets/iris/samples",
                          files={"files": ("iris.csv", (tmp_path / "iris.csv").read_bytes())})
        assert len(upload.json()["accepted"]) == 150, upload.text
        for ep in ("sim-1", "sim-2"):
            device = {"endpoint": ep, "board": "x86-tflm", "tags": ["lab"]}
            assert api.post("/devices", json=device).status_code == 201
            fleet.add(ep, x86_images=True)
        assert api.post("/groups", json={"name": "lab", "tags": ["lab"]}).status_code == 201

        # mistakes: all at once, each on its line; the model the training would make is checked too
        wrong = PIPELINE.replace("    - board: x86-tflm\n", "    - board: x86-tflm\n    - board: esp32\n"
                                 "    - board: tiny-m3\n      options: {}\n")
        wrong = wrong.replace("group: lab", "group: lab-b")
        reply = api.post("/pipelines/validate", json={"source": wrong, "filename": "iris.yaml"})
        assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
        errors = reply.json()["details"]["errors"]
        lines = wrong.splitlines()
        at = [lines.index(text) + 1 for text in ("    - board: esp32", "    - board: tiny-m3",
                                                 "  group: lab-b")]
        assert [(e["line"], e["field"]) for e in errors] == list(zip(at, (
            "compile.targets[1].board", "compile.targets[2].board", "deploy.group"), strict=True))
        assert "unknown" in errors[0]["message"] and errors[2]["message"] == "no group 'lab-b'"
        assert "board 'tiny-m3'" in errors[1]["message"] and "RAM" in errors[1]["message"]
        assert reply.json()["detail"].startswith(
            f"3 problem(s) in iris.yaml: iris.yaml:{at[0]}: board 'esp32'")
        assert api.post("/pipelines/runs", json={"source": wrong}).status_code == 422
        assert api.get("/pipelines/runs").json() == []

        plan = api.post("/pipelines/validate", json={"source": PIPELINE}).json()
        assert plan["stages"] == ["dataset", "train", "quantize", "compile", "deploy"]
        assert plan["dataset"] == "iris:1" and plan["devices"] == ["sim-1", "sim-2"]

        created = api.post("/pipelines/runs", json={"source": PIPELINE})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        first = waiting_rollout(api, run_id)
        assert api.post(f"/rollouts/{first}/cancel", json={"reason": "not today"}).is_success
        failed = wait(lambda: (r := api.get(f"/pipelines/runs/{run_id}").json())["state"] == "failed" and r,
                      "the run failing")
        assert [s["state"] for s in failed["stages"]] == ["succeeded"] * 4 + ["failed"]
        assert failed["error"].startswith(f"deploy: rollout {first} cancelled")
        assert api.get(f"/jobs/{failed['job_id']}").json()["state"] == "failed"
        made = {s["name"]: s for s in failed["stages"]}
        assert made["dataset"]["artifacts"]["version"] == 1
        assert made["train"]["artifacts"]["model"] == "iris:1" and made["train"]["job_ids"]
        assert any(" epoch 2 of 2: loss " in line for line in made["train"]["log"]), made["train"]["log"]
        assert 0 <= made["quantize"]["artifacts"]["drop"] <= 0.5
        build = made["compile"]["artifacts"]["builds"]["x86-tflm"]
        assert api.get(f"/builds/{build}").json()["firmware"]["version"] == "2.0.0"

        again = api.post(f"/pipelines/runs/{run_id}/rerun")
        assert again.status_code == 200 and again.json()["attempt"] == 2
        second = waiting_rollout(api, run_id)
        assert second != first

        # the whole run cancelled while its rollout waits: the rollout stops, the run can go on later
        assert api.post(f"/pipelines/runs/{run_id}/rerun").status_code == 409  # still running
        cli = subprocess.run([sys.executable, "-m", "tinymlaas.cli.main", "pipeline", "--url", server.url,
                              "--token", server.admin_token, "cancel", run_id],
                             capture_output=True, text=True, timeout=120, check=False)
        assert cli.returncode == 0, cli.stderr
        said = " ".join(cli.stdout.split())
        assert said == (f"pipeline run {run_id} cancelled: deploy: cancelled by admin "
                        f"('tinymlaas pipeline rerun {run_id}' to go on from there)")
        stopped = api.get(f"/pipelines/runs/{run_id}").json()
        assert stopped["state"] == "cancelled" and stopped["error"] == "deploy: cancelled by admin", stopped
        assert [s["state"] for s in stopped["stages"]] == ["succeeded"] * 4 + ["cancelled"]
        assert f"rollout {second} cancelled" in " ".join(stage(stopped, "deploy")["log"])
        assert api.get(f"/rollouts/{second}").json()["state"] == "cancelled"
        assert api.get(f"/jobs/{stopped['job_id']}").json()["state"] == "cancelled"
        assert api.post(f"/pipelines/runs/{run_id}/cancel").status_code == 409  # not running
        assert api.post(f"/pipelines/runs/{run_id}/rerun").json()["attempt"] == 3
        third = waiting_rollout(api, run_id)
        assert api.post(f"/rollouts/{third}/approve", json={}).is_success
        done = wait(lambda: (r := api.get(f"/pipelines/runs/{run_id}").json())["state"] != "running" and r,
                    "the re-run ending")
        assert done["state"] == "succeeded", done
        for before, after in zip(failed["stages"][:4], done["stages"][:4], strict=True):
            assert after == before  # not run again: same jobs, same artifacts
        deploy = stage(done, "deploy")
        assert deploy["attempt"] == 3 and deploy["artifacts"]["rollout_id"] == third
        assert deploy["artifacts"]["devices"] == 2
        assert fleet.version("sim-1") == fleet.version("sim-2") == "2.0.0"
        assert api.get(f"/jobs/{done['job_id']}").json()["state"] == "succeeded"
        assert api.post(f"/pipelines/runs/{run_id}/rerun").status_code == 409
