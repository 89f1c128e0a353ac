"""ML pipelines: a YAML file (dataset -> train -> quantize -> compile for targets -> deploy to a
group) read with the line of everything in it; run by :mod:`tinymlaas.services.pipelines`."""

from tinymlaas.pipelines.models import PipelineProblem, PipelineRun, PipelineSource, Stage
from tinymlaas.pipelines.spec import PipelineInvalid, PipelineSpec, parse

__all__ = ["PipelineInvalid", "PipelineProblem", "PipelineRun", "PipelineSource", "PipelineSpec", "Stage",
           "parse"]
