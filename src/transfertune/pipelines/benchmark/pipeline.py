"""``benchmark``: every configured method x pair x repetition on one database, one table."""

from kedro.pipeline import Pipeline

from transfertune.pipelines.evaluation import evaluation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return evaluation_pipeline("benchmark")
