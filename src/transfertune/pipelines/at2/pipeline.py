"""``at2``: AT2 on the configured database and pairs next to the foundation baselines."""

from kedro.pipeline import Pipeline

from transfertune.pipelines.evaluation import evaluation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return evaluation_pipeline("at2")
