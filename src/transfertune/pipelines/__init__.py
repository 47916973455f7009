"""Thin Kedro glue: each sub-package is one pipeline discovered by ``find_pipelines``."""
