"""ML pipelines: a YAML file (dataset -> train -> quantize -> compile for targets -> deploy to a
group) read with the line of everything in it; run by :mod:`tinymlaas.services.pipelines`."""

from tinymlaas.pipelines.models import PipelineRun, PipelineSource, Problem, Stage
from tinymlaas.pipelines.spec import PipelineInvalid, PipelineSpec, parse

__all__ = ["PipelineInvalid", "PipelineRun", "PipelineSource", "PipelineSpec", "Problem", "Stage", "parse"]
