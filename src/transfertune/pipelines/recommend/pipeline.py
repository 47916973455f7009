"""``kedro run --pipeline=recommend``: one node, :func:`transfertune.history.recommend.recommend`."""

from kedro.pipeline import Pipeline, node

from transfertune.pipelines.recommend import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [node(nodes.recommend, "params:recommend", ["recommend_table", "recommend_md"], name="recommend")],
        tags=["recommend"],
    )
