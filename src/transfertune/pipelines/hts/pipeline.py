"""``kedro run --pipeline=hts``: pairs (source, target tasks) -> each source's tuning (Omega_S) -> every method on each target ->
evaluations, curves, ratios and Figure 1. Every knob is in ``conf/base/parameters_hts.yml``."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.hts import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.prepare_tasks, "params:hts", "hts_pairs", name="hts_prepare_tasks"),
            node(nodes.tune_source, ["hts_pairs", "params:hts"], ["hts_source_catalogs", "hts_source_observations"], name="hts_tune_source"),
            node(nodes.tune_target, ["hts_pairs", "hts_source_catalogs", "params:hts"], "hts_results", name="hts_tune_target"),
            node(
                nodes.report,
                ["hts_results", "params:hts"],
                ["hts_evaluations", "hts_curves", "hts_ratios", "hts_ratios_md", "hts_figure"],
                name="hts_report",
            ),
        ],
        tags=["hts"],
    )
