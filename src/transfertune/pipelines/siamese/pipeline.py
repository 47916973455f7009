"""``kedro run --pipeline=siamese``: a task family -> catalog -> target distances -> Algorithm 1
(meta-features, Spearman, retrieval regret) -> Algorithm 2 and Figure 2's baselines, live -> curves and summary.
Every knob is in ``conf/base/parameters_siamese.yml``."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.siamese import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.make_family, "params:siamese", ["siamese_family", "siamese_family_table"], name="siamese_make_family"),
            node(nodes.make_catalog, ["siamese_family", "params:siamese"], "siamese_catalog", name="siamese_make_catalog"),
            node(
                nodes.target_distances,
                ["siamese_family", "siamese_catalog", "params:siamese"],
                ["siamese_targets", "siamese_target_distances", "siamese_target_heatmap"],
                name="siamese_target_distances",
            ),
            node(
                nodes.learn_metafeatures,
                ["siamese_family", "siamese_targets", "params:siamese"],
                ["siamese_metafeatures", "siamese_spearman", "siamese_spearman_summary", "siamese_retrievals", "siamese_losses",
                 "siamese_retrieval_regret", "siamese_retrieval_regret_summary"],
                name="siamese_learn_metafeatures",
            ),
            node(nodes.run_bo, ["siamese_family", "siamese_catalog", "siamese_metafeatures", "params:siamese"], "siamese_results", name="siamese_run_bo"),
            node(
                nodes.summarise,
                ["siamese_results", "siamese_spearman_summary", "siamese_retrieval_regret_summary", "params:siamese"],
                ["siamese_bo_curves", "siamese_bo_figure", "siamese_summary_md", "siamese_checks"],
                name="siamese_summarise",
            ),
        ],
        tags=["siamese"],
    )
