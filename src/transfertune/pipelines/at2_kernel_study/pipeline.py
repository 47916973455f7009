"""``at2_kernel_study``: the 64 kernel combinations of AT2 ranked on held-out data (Tables 8-15):
by log predictive density with exact inference (default), by ELBO with the paper's SVGP."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.at2_kernel_study.nodes import run_kernel_study
from transfertune.pipelines.evaluation import load_database


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(load_database, "params:database", "kernel_study_database", name="kernel_study_load_database"),
            node(
                run_kernel_study,
                ["kernel_study_database", "params:at2_kernel_study", "params:database"],
                ["at2_kernel_study_table", "at2_kernel_study_figure", "at2_kernel_study_md"],
                name="run_kernel_study",
            ),
        ],
        tags=["at2"],
    )
