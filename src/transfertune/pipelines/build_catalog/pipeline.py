"""``kedro run --pipeline=build_catalog``: subsets -> tasks, configs, trials, catalog folder, report."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.build_catalog import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.prepare_tasks, "params:build_catalog", "build_catalog_task_data", name="prepare_tasks"),
            node(nodes.sample_configs, "params:build_catalog", "build_catalog_configs", name="sample_configs"),
            node(
                nodes.train_catalog,
                ["build_catalog_task_data", "build_catalog_configs", "params:build_catalog"],
                ["build_catalog_observations", "build_catalog_failures", "build_catalog_run_info"],
                name="train_catalog",
            ),
            node(
                nodes.report_catalog,
                ["build_catalog_observations", "build_catalog_failures", "build_catalog_run_info", "params:build_catalog"],
                ["build_catalog_summary", "build_catalog_learning_curves"],
                name="report_catalog",
            ),
        ],
        tags=["build_catalog"],
    )
