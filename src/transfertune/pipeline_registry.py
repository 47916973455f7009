"""Project pipelines: every package under ``transfertune.pipelines`` is found automatically."""

from importlib.resources import files

from kedro.framework.project import find_pipelines
from kedro.framework.project import pipelines as project_pipelines
from kedro.pipeline import Pipeline

from transfertune.errors import ConfigurationError


def pipeline_names() -> list[str]:
    """The names ``kedro run --pipelines`` accepts: ``__default__`` and one per sub-package of
    ``transfertune.pipelines`` (the packages ``find_pipelines`` imports)."""
    package = files("transfertune.pipelines")
    found = sorted(p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    return ["__default__", *found]


def check_pipeline_names(requested) -> None:
    """Raise a ConfigurationError that lists the registered pipelines if a requested name is not one."""
    names = pipeline_names()
    unknown = sorted(set(requested or []) - set(names))
    if unknown:
        quoted = ", ".join(f"'{name}'" for name in unknown)
        raise ConfigurationError(f"no pipeline named {quoted}; the registered pipelines are {', '.join(names)}")


def register_pipelines() -> dict[str, Pipeline]:
    # Kedro 1.x imports only the pipelines a run asks for (a filter it keeps on its `pipelines`
    # object), and find_pipelines(raise_errors=True) reports a name without a package as an
    # ImportError of transfertune.pipelines.<name>: a 150-line traceback for a typo. A user error
    # instead, which the CLI prints as one line (`kedro run` checks the names before its session;
    # this covers KedroSession.run from Python).
    check_pipeline_names(getattr(project_pipelines, "_requested_pipelines", None))
    pipelines = find_pipelines(raise_errors=True)
    # The main job is AT2 once it exists; the benchmark pipeline before.
    pipelines["__default__"] = pipelines.get("at2", pipelines.get("benchmark"))
    return pipelines
