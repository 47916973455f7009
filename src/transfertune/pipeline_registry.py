"""Project pipelines: every package under ``transfertune.pipelines`` is found automatically."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    # The main job is AT2 once it exists; the benchmark pipeline before.
    pipelines["__default__"] = pipelines.get("at2", pipelines.get("benchmark"))
    return pipelines
