"""A pipeline file: YAML read with the line and column of every key and item, the records it
becomes, and its structural checks (fields, types, ranges), each problem naming its line.

What the file may say is checked by the records the services already take: ``train`` by
:class:`~tinymlaas.datasets.models.TrainingSettings`, ``deploy`` by
:class:`~tinymlaas.fleet.models.RolloutSpec`, so a pipeline accepts exactly what a training or a
rollout does. What needs the service (datasets, boards' fit, groups) is checked by
:func:`tinymlaas.services.pipelines.validate`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tinymlaas.datasets.models import TrainingSettings
from tinymlaas.errors import InvalidInput
from tinymlaas.fleet.models import RolloutSpec
from tinymlaas.pipelines.models import PipelineProblem, StageName

#: A path into the document: mapping keys and sequence indexes.
DocPath = tuple[str | int, ...]
NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_SOURCE_CHARS = 100_000
#: Fields the pipeline fills in itself, refused when a file gives them.
_TRAIN_OWN = {"dataset": "the pipeline's 'dataset' says what to train on",
              "calibration_samples": "give it under 'quantize'"}
_DEPLOY_OWN = {"builds": "the pipeline's compile stage makes the builds",
               "name": "the rollout is named after the pipeline"}


class TargetSpec(BaseModel):
    """One board to compile and build for (as ``POST /builds`` takes it)."""

    model_config = ConfigDict(extra="forbid")

    board: str = Field(description="a board (GET /targets)")
    compiler: str | None = Field(None, description="default: the board's first compiler")
    options: dict[str, Any] = Field({}, description="the compiler's options")
    builder: Literal["docker", "local"] | None = Field(None, description="default: docker")
    toolchain: str | None = Field(None, description="a toolchain registered at run time (not a builder)")


class CompileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field("1.0.0", pattern=r"^[0-9A-Za-z.+-]{1,40}$", description="the firmware's version")
    targets: list[TargetSpec] = Field(min_length=1, max_length=32)


class QuantizeSpec(BaseModel):
    """How the trained model is quantized (in the training's converter) and the gate it must pass."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int8"] = Field("int8", description="full-integer int8, calibrated on the training split")
    calibration_samples: int = Field(500, ge=1, le=100_000)
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="fail when int8 is this much below float on the test split")


class PipelineSpec(BaseModel):
    """dataset -> train -> quantize -> compile for targets -> deploy to a group; or an existing
    model -> compile -> deploy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=500)
    dataset: str | None = Field(None, description="a dataset's name or id; name:version for a version")
    train: dict[str, Any] | None = Field(None, description="training settings (POST /trainings)")
    quantize: QuantizeSpec | None = None
    model: str | None = Field(None, description="an existing model version instead of dataset and train")
    compile: CompileSpec
    deploy: dict[str, Any] | None = Field(None, description="a rollout to a group (POST /rollouts)")

    @model_validator(mode="after")
    def _source(self) -> PipelineSpec:
        if self.model is not None and (self.dataset is not None or self.train is not None):
            raise ValueError("give 'model' (an existing model) or 'dataset' and 'train', not both")
        if self.model is None and (self.dataset is None or self.train is None):
            raise ValueError("give 'dataset' and 'train' (a model to train), or 'model' (an existing one)")
        if self.model is not None and self.quantize is not None:
            raise ValueError("'quantize' applies to a model the pipeline trains; this one names 'model'")
        return self

    def stages(self) -> list[StageName]:
        """The job graph, in order (each stage needs the ones before it)."""
        first: list[StageName] = ["dataset", "train", "quantize"] if self.model is None else []
        last: list[StageName] = ["deploy"] if self.deploy is not None else []
        return [*first, "compile", *last]

    def training(self, dataset: str) -> TrainingSettings:
        quantize = self.quantize or QuantizeSpec()
        return TrainingSettings.model_validate({**(self.train or {}), "dataset": dataset,
                                                "calibration_samples": quantize.calibration_samples})

    def rollout(self, builds: list[str]) -> RolloutSpec:
        return RolloutSpec.model_validate({**(self.deploy or {}), "builds": builds, "name": self.name})


class PipelineInvalid(InvalidInput):
    """A pipeline file with problems: every one of them, each with its line (an ``invalid_input``
    problem whose ``details.errors`` lists them)."""

    def __init__(self, problems: list[PipelineProblem], filename: str = "pipeline.yaml") -> None:
        lines = [f"{filename}:{p.line}: {p.message}" for p in problems]
        super().__init__(f"{len(problems)} problem(s) in {filename}: " + "; ".join(lines),
                         errors=[p.model_dump() for p in problems])
        self.problems = problems


class Document:
    """A YAML document's data and where each key and item of it is."""

    def __init__(self, data: Any, marks: dict[DocPath, tuple[int, int]]) -> None:
        self.data, self.marks = data, marks

    def at(self, path: DocPath) -> tuple[int, int]:
        """The line and column of ``path``, else of the nearest enclosing part that is there."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.marks:
                return self.marks[path[:n]]
        return 1, 1

    def problem(self, path: DocPath, message: str) -> PipelineProblem:
        line, column = self.at(path)
        return PipelineProblem(line=line, column=column, field=dotted(path), message=message)


def dotted(path: DocPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read(text: str) -> Document:
    """Parse YAML (safe: no tags that run code), keeping each key's and item's position; a syntax
    error, a duplicate key or a document that is not a mapping is a :class:`PipelineInvalid`."""
    if len(text) > MAX_SOURCE_CHARS:
        raise PipelineInvalid([PipelineProblem(line=1, column=1, field="", message=(
            f"the file is {len(text):,} characters; a pipeline file has at most {MAX_SOURCE_CHARS:,}"))])
    try:
        loader = yaml.SafeLoader(text)  # refuses control characters at once
    except yaml.YAMLError as exc:
        raise PipelineInvalid([PipelineProblem(line=1, column=1, field="",
                                               message=f"not YAML: {exc}")]) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PipelineInvalid([PipelineProblem(line=line, column=column, field="",
                                       message=f"not YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise PipelineInvalid([PipelineProblem(line=1, column=1, field="",
                                               message=f"not YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict):
        raise PipelineInvalid([PipelineProblem(line=1, column=1, field="",
                                       message="a pipeline file is a mapping (name, dataset, train, ...)")])
    marks: dict[DocPath, tuple[int, int]] = {}
    duplicates: list[PipelineProblem] = []
    _walk(node, (), marks, duplicates)
    if duplicates:
        raise PipelineInvalid(duplicates)
    return Document(data, marks)


def _walk(node: yaml.Node, path: DocPath, marks: dict[DocPath, tuple[int, int]],
          dup: list[PipelineProblem]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            where = (key.start_mark.line + 1, key.start_mark.column + 1)
            if (*path, name) in marks:
                dup.append(PipelineProblem(line=where[0], column=where[1], field=dotted((*path, name)),
                                   message=f"'{name}' is given twice"))
                continue
            marks[(*path, name)] = where
            _walk(value, (*path, name), marks, dup)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[(*path, i)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _walk(item, (*path, i), marks, dup)


def parse(text: str, filename: str = "pipeline.yaml") -> tuple[PipelineSpec, Document]:
    """The file's spec, or :class:`PipelineInvalid` with every structural problem."""
    spec, doc, problems = parse_all(text, filename)
    if spec is None:
        raise PipelineInvalid(problems, filename)
    return spec, doc


def parse_all(text: str, filename: str = "pipeline.yaml"
              ) -> tuple[PipelineSpec | None, Document, list[PipelineProblem]]:
    """The spec (None if the file has structural problems), the document, and those problems in
    line order; only a file that is not YAML at all is refused at once."""
    doc = read(text)
    problems: list[PipelineProblem] = []
    try:
        spec: PipelineSpec | None = PipelineSpec.model_validate(doc.data)
    except ValidationError as exc:
        problems += _problems(doc, exc, ())
        spec = None
    data = doc.data
    if isinstance(data.get("train"), dict):
        problems += _nested(doc, ("train",), data["train"], _TRAIN_OWN,
                            lambda d: TrainingSettings.model_validate({**d, "dataset": "-"}))
    if isinstance(data.get("deploy"), dict):
        problems += _nested(doc, ("deploy",), data["deploy"], _DEPLOY_OWN,
                            lambda d: RolloutSpec.model_validate({**d, "builds": ["-"]}))
    return (None if problems else spec), doc, sorted(problems, key=lambda p: (p.line, p.column))


def _nested(doc: Document, at: DocPath, section: dict[str, Any], own: dict[str, str],
            check: Any) -> list[PipelineProblem]:
    """A section checked by the record its service takes; fields the pipeline fills are refused."""
    problems = [doc.problem((*at, key), f"'{key}' is not given here: {why}")
                for key, why in own.items() if key in section]
    try:
        check({k: v for k, v in section.items() if k not in own})
    except ValidationError as exc:
        problems += _problems(doc, exc, at)
    return problems


def _problems(doc: Document, exc: ValidationError, at: DocPath) -> list[PipelineProblem]:
    out = []
    for err in exc.errors():
        loc: DocPath = (*at, *(p for p in err["loc"] if isinstance(p, str | int)))
        message = re.sub(r"^Value error, ", "", err["msg"])
        if err["type"] == "extra_forbidden":
            message = f"'{loc[-1]}' is not a field here"
        elif err["type"] == "missing":
            message = f"'{loc[-1]}' is missing"
        elif loc:
            message = f"{dotted(loc)}: {message}"
        out.append(doc.problem(loc, message))
    return out
