"""``kedro run --pipeline=hypernet``: data split -> Figure 2, Figure 3, many hyperparameters vs BO
-> one summary table. Every knob is in ``conf/base/parameters_hypernet.yml``."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.hypernet import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.load_data, "params:hypernet", "hypernet_data", name="hypernet_load_data"),
            node(
                nodes.run_figure2,
                ["hypernet_data", "params:hypernet"],
                ["hypernet_figure2", "hypernet_figure2_points", "hypernet_figure2_summary"],
                name="hypernet_figure2",
            ),
            node(
                nodes.run_figure3,
                ["hypernet_data", "params:hypernet"],
                ["hypernet_figure3", "hypernet_figure3_points", "hypernet_figure3_summary"],
                name="hypernet_figure3",
            ),
            node(
                nodes.run_comparison,
                ["hypernet_data", "params:hypernet"],
                ["hypernet_comparison_figure", "hypernet_comparison"],
                name="hypernet_comparison",
            ),
            node(
                nodes.summarise,
                ["hypernet_figure2_summary", "hypernet_figure3_summary", "hypernet_comparison"],
                "hypernet_summary",
                name="hypernet_summarise",
            ),
        ]
    )
