"""``kedro run --pipeline=tune``: task -> live tuning of every method -> summary, curves, figure."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.tune import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.prepare_task, "params:tune", "tune_task_data", name="tune_prepare_task"),
            node(nodes.tune, ["tune_task_data", "params:tune"], ["tune_results", "tune_run_info"], name="tune_run_methods"),
            node(
                nodes.summarise,
                ["tune_results", "params:tune"],
                ["tune_summary", "tune_summary_md", "tune_curves", "tune_figure"],
                name="tune_summarise",
            ),
        ],
        tags=["tune"],
    )
