"""``kedro run --pipeline=import_history``: one node, the library's import (transfertune.history)."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.import_history import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [node(nodes.import_history, "params:import_history", "import_history_report", name="import_history")],
        tags=["import_history"],
    )
