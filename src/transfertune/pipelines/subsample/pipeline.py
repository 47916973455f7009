"""``kedro run --pipeline=subsample``: sources -> adversarial scores -> subset manifests -> report."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.subsample import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.load_sources, "params:subsample", "subsample_sources", name="load_sources"),
            node(nodes.score_sources, ["subsample_sources", "params:subsample"], "subsample_scores", name="score_sources"),
            node(
                nodes.sample_subsets,
                ["subsample_sources", "subsample_scores", "params:subsample"],
                "subset_manifests",
                name="sample_subsets",
            ),
            node(
                nodes.report_subsets,
                ["subset_manifests", "subsample_scores"],
                ["subsample_subset_summary", "subsample_norm_comparison", "subsample_norms_figure"],
                name="report_subsets",
            ),
        ],
        tags=["subsample"],
    )
