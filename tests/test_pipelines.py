"""Pipeline files: every problem at once, each on its line — the file's own (YAML, fields, the
training's and the rollout's settings) and the service's (an unknown board, a model that does not
fit a board or uses an op its compiler lacks, a missing dataset, an unknown group, a group with
devices of a board the pipeline does not build for)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tinymlaas.compilers.aot import AotCompiler
from tinymlaas.config import Settings
from tinymlaas.fleet.models import DeviceSpec, GroupSpec
from tinymlaas.pipelines.models import PipelineSource
from tinymlaas.pipelines.spec import PipelineInvalid, parse
from tinymlaas.services.builds import register_model
from tinymlaas.services.pipelines import validate
from tinymlaas.store import Store

REPO_TARGETS = Settings().targets_dir


def problems_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(PipelineInvalid) as caught:
        parse(text, "p.yaml")
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


GOOD = """\
name: iris-lab
dataset: iris
train:
  epochs: 3
  width: 8
quantize:
  calibration_samples: 50
  max_accuracy_drop: 0.1
compile:
  version: 2.0.0
  targets:
    - board: x86-tflm
    - board: lm3s6965evb
      compiler: aot
deploy:
  group: lab
  kind: model
  waves: ["1", "rest"]
"""


def test_a_good_file_becomes_the_records_the_services_take() -> None:
    spec, _ = parse(GOOD)
    assert spec.stages() == ["dataset", "train", "quantize", "compile", "deploy"]
    training = spec.training("iris:1")
    assert (training.dataset, training.epochs, training.width, training.calibration_samples) == (
        "iris:1", 3, 8, 50)
    rollout = spec.rollout(["b1", "b2"])
    assert (rollout.group, rollout.kind, rollout.waves, rollout.builds, rollout.name) == (
        "lab", "model", ["1", "rest"], ["b1", "b2"], "iris-lab")
    only_build = parse("name: m\nmodel: hello_world:1\ncompile:\n  targets: [{board: x86-tflm}]\n")[0]
    assert only_build.stages() == ["compile"]


def test_every_problem_of_the_file_at_once_each_on_its_line() -> None:
    text = GOOD.replace("  epochs: 3", "  epochs: 0\n  colour: red").replace(
        "max_accuracy_drop: 0.1", "max_accuracy_drop: 2").replace(
        "    - board: lm3s6965evb\n      compiler: aot", "    - compiler: aot").replace(
        'waves: ["1", "rest"]', 'waves: ["rest", "1"]\n  builds: [b1]')
    found = problems_of(text)
    assert found == [
        (line_of(text, "epochs"), "train.epochs", "train.epochs: Input should be greater than or equal to 1"),
        (line_of(text, "colour"), "train.colour", "'colour' is not a field here"),
        (line_of(text, "max_accuracy_drop"), "quantize.max_accuracy_drop",
         "quantize.max_accuracy_drop: Input should be less than or equal to 1"),
        (line_of(text, "- compiler: aot"), "compile.targets[1].board", "'board' is missing"),
        (line_of(text, "waves"), "deploy.waves",
         "deploy.waves: wave 'rest' is none of: a count (\"1\"), a share (\"10%\"), \"rest\" (last only)"),
        (line_of(text, "builds"), "deploy.builds",
         "'builds' is not given here: the pipeline's compile stage makes the builds"),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\n  bad: [\n", (2, "", "not YAML: mapping values are not allowed here")),
    ("- a\n- b\n", (1, "", "a pipeline file is a mapping (name, dataset, train, ...)")),
    ("name: a\ncompile: {targets: [{board: x86-tflm}]}\nname: b\nmodel: m\n",
     (3, "name", "'name' is given twice")),
    ("name: a\nmodel: m\ndataset: d\ncompile: {targets: [{board: x86-tflm}]}\n",
     (1, "", "give 'model' (an existing model) or 'dataset' and 'train', not both")),
    ("name: Bad Name\nmodel: m\ncompile: {targets: [{board: x86-tflm}]}\n",
     (1, "name", "name: String should match pattern '^[a-z0-9][a-z0-9._-]{0,63}$'")),
])
def test_a_broken_file_is_refused_where_it_breaks(text: str, expected: tuple[int, str, str]) -> None:
    assert problems_of(text) == [expected]


# -- against the service's state ------------------------------------------------------------------

@pytest.fixture
def lab(tmp_path: Path, hello_world: bytes) -> Iterator[tuple[Store, Settings]]:
    """A store with hello_world, a group 'lab' (an x86 device and a Cortex-M3), and a board that is
    an LM3S6965 with 2 KB of RAM (too little for any firmware)."""
    targets = tmp_path / "targets"
    for board in ("x86-tflm", "lm3s6965evb"):
        (targets / board).mkdir(parents=True)
        (targets / board / "board.toml").write_text((REPO_TARGETS / board / "board.toml").read_text())
    (targets / "tiny-m3").mkdir()
    (targets / "tiny-m3" / "board.toml").write_text(
        (REPO_TARGETS / "lm3s6965evb" / "board.toml").read_text().replace('"lm3s6965evb"', '"tiny-m3"', 1)
        .replace("65_536", "2_048"))
    settings = Settings(data_dir=tmp_path / "data", targets_dir=targets)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "artifacts")
    register_model(store, "hello_world", hello_world, source="test")
    store.rollouts.add_group(GroupSpec(name="lab", tags=["lab"]))
    store.devices.add(DeviceSpec(endpoint="cam-1", board="x86-tflm", tags=["lab"]))
    store.devices.add(DeviceSpec(endpoint="mcu-1", board="lm3s6965evb", tags=["lab"]))
    yield store, settings
    store.close()


def check(lab: tuple[Store, Settings], text: str) -> list[tuple[int, str, str]]:
    store, settings = lab
    with pytest.raises(PipelineInvalid) as caught:
        validate(store, settings, PipelineSource(source=text, filename="p.yaml"))
    assert caught.value.status == 422 and caught.value.details["errors"][0]["line"] >= 1
    return [(p.line, p.field, p.message) for p in caught.value.problems]


BUILD_AND_DEPLOY = """\
name: hello-lab
model: hello_world:1
compile:
  targets:
    - board: x86-tflm
    - board: lm3s6965evb
      options: {in_place: true}
deploy:
  group: lab
"""


def test_a_valid_pipeline_says_what_it_will_do(lab: tuple[Store, Settings]) -> None:
    store, settings = lab
    _, plan = validate(store, settings, PipelineSource(source=BUILD_AND_DEPLOY))
    assert plan.stages == ["compile", "deploy"] and plan.model == "hello_world:1"
    assert plan.targets == ["x86-tflm", "lm3s6965evb"] and plan.group == "lab"
    assert plan.devices == ["cam-1", "mcu-1"]


def test_every_problem_with_the_service_at_once_each_on_its_line(lab: tuple[Store, Settings],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the aot compiler as a compiler without FULLY_CONNECTED would be (hello_world is made of it)
    monkeypatch.setattr(AotCompiler, "supported_ops", AotCompiler.supported_ops - {"FULLY_CONNECTED"})
    text = """\
name: hello-lab
model: hello_world:1
compile:
  targets:
    - board: x86-tflm
      options: {arena_margin: 4}
    - board: esp32
    - board: tiny-m3
      options: {in_place: true}
    - board: lm3s6965evb
      toolchain: acme
deploy:
  group: lab-b
  kind: model
"""
    found = check(lab, text)
    assert [(line, where) for line, where, _ in found] == [
        (6, "compile.targets[0].options"), (7, "compile.targets[1].board"), (8, "compile.targets[2].board"),
        (10, "compile.targets[3].board"), (11, "compile.targets[3].toolchain"), (13, "deploy.group")]
    messages = dict(((line, m) for line, _, m in found))
    assert "option 'arena_margin'" in messages[6]
    assert messages[7].startswith("board 'esp32' is unknown; boards: lm3s6965evb, tiny-m3, x86-tflm")
    assert "does not support op(s) FULLY_CONNECTED" in messages[8]  # the op is checked before the fit
    assert "does not support op(s) FULLY_CONNECTED" in messages[10]
    assert messages[11] == "no toolchain 'acme' is registered"
    assert messages[13] == "no group 'lab-b'"

    monkeypatch.undo()
    fits_not = check(lab, text.replace("      options: {arena_margin: 4}\n", ""))
    assert [(line, where) for line, where, _ in fits_not][:2] == [
        (6, "compile.targets[1].board"), (7, "compile.targets[2].board")]
    assert "board 'tiny-m3'" in fits_not[1][2] and "of RAM" in fits_not[1][2] and "missing" in fits_not[1][2]


def test_a_missing_dataset_a_missing_model_and_a_group_with_boards_it_does_not_build_for(
        lab: tuple[Store, Settings]) -> None:
    found = check(lab, GOOD.replace("    - board: lm3s6965evb\n      compiler: aot\n", ""))
    assert found == [
        (2, "dataset", "no dataset 'iris'"),
        (14, "deploy.group", "group 'lab' has devices of boards the pipeline builds for none of: "
                             "mcu-1 (lm3s6965evb); add their boards under compile.targets"),
    ]
    assert check(lab, BUILD_AND_DEPLOY.replace("hello_world:1", "hello_world:7")) == [
        (2, "model", "no model 'hello_world:7'")]


def test_a_file_with_structural_problems_still_names_the_boards_datasets_and_groups_that_do_not_exist(
        lab: tuple[Store, Settings]) -> None:
    text = GOOD.replace("  width: 8", "  widht: 8").replace("board: lm3s6965evb", "board: esp32").replace(
        "group: lab", "group: lab-b")
    assert [(line, where) for line, where, _ in check(lab, text)] == [
        (2, "dataset"), (5, "train.widht"), (13, "compile.targets[1].board"), (16, "deploy.group")]


def test_the_cli_prints_each_problem_as_file_line_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from tinymlaas.cli.main import main

    bad = tmp_path / "p.yaml"
    bad.write_text(GOOD.replace("  epochs: 3", "  epochs: 0").replace("board: lm3s6965evb", "board: esp32"))
    with pytest.raises(SystemExit) as exited:
        main(["pipeline", "validate", "--offline", str(bad)])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{bad}:4:3: train.epochs: Input should be greater than or equal to 1"
    assert lines[1].startswith(f"{bad}:13:7: board 'esp32' is unknown; boards: ")
    bad.write_text(GOOD)
    with pytest.raises(SystemExit) as exited:
        main(["pipeline", "validate", "--offline", str(bad)])
    assert exited.value.code == 0
    assert "pipeline 'iris-lab' is valid (offline" in capsys.readouterr().out
