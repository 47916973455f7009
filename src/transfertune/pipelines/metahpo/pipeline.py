"""``kedro run --pipeline=metahpo``: data -> Meta-HPO, its ablation and the baselines under the same
wall clock, each choice retrained and tested (Table 1) -> the out-of-sample stream (Figure 6) ->
tables and figures. Every knob is in ``conf/base/parameters_metahpo.yml``."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.metahpo import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.prepare, "params:metahpo", "metahpo_data", name="metahpo_prepare"),
            node(
                nodes.compare,
                ["metahpo_data", "params:metahpo"],
                ["metahpo_runs", "metahpo_observations", "metahpo_subsets", "metahpo_meta_features", "metahpo_offline"],
                name="metahpo_compare",
            ),
            node(nodes.out_of_sample, ["metahpo_data", "metahpo_offline", "params:metahpo"], "metahpo_oos", name="metahpo_out_of_sample"),
            node(
                nodes.report,
                ["metahpo_runs", "metahpo_oos"],
                ["metahpo_table1", "metahpo_table1_md", "metahpo_table1_figure", "metahpo_oos_summary", "metahpo_oos_figure"],
                name="metahpo_report",
            ),
        ]
    )
