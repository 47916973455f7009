"""``kedro run --pipeline=hts``: tasks -> source tuning (Omega_S) -> every method on the target ->
evaluations, curves, ratios and Figure 1. Every knob is in ``conf/base/parameters_hts.yml``."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.hts import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.prepare_tasks, "params:hts", ["hts_source_task", "hts_target_task"], name="hts_prepare_tasks"),
            node(nodes.tune_source, ["hts_source_task", "params:hts"], ["hts_source_catalog", "hts_source_observations"], name="hts_tune_source"),
            node(nodes.tune_target, ["hts_target_task", "hts_source_catalog", "params:hts"], "hts_results", name="hts_tune_target"),
            node(
                nodes.report,
                ["hts_results", "params:hts"],
                ["hts_evaluations", "hts_curves", "hts_ratios", "hts_ratios_md", "hts_figure"],
                name="hts_report",
            ),
        ],
        tags=["hts"],
    )
