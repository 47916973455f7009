"""Library code with no Kedro import: spaces, catalogs, objectives, metrics, tracking."""
