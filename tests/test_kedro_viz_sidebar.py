"""Kedro-Viz lists every parameter of a pipeline without namespaces twice in its sidebar.

Not the project's doing: Kedro-Viz (12.5) adds each dataset outside a modular pipeline to its root
tree as type "data" (``DataAccessManager.add_dataset``) and again with its own type "parameters"
(``create_modular_pipelines_tree_for_registered_pipeline``); the two children differ by type, so
the set keeps both. Same symptom in Kedro-Viz's demo project: kedro-org/kedro-viz#2080. Strict
xfail: when Kedro-Viz fixes it this test fails, and the note in the README goes.
"""

import collections

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node


def _first(data, parameters):
    return data


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="Kedro-Viz lists root parameters as 'data' and 'parameters' (kedro-org/kedro-viz#2080)")
def test_kedro_viz_lists_each_parameter_once():
    from kedro_viz.data_access.managers import DataAccessManager

    pipeline = Pipeline([
        node(_first, ["x", "params:shared"], "y", name="first"),
        node(_first, ["y", "params:shared"], "z", name="second"),  # a parameter two nodes read
        node(_first, ["y", "params:alone"], "w", name="third"),  # and one only one node reads
    ])
    catalog = DataCatalog(datasets={"x": MemoryDataset(1), "params:shared": MemoryDataset(1), "params:alone": MemoryDataset(2)})
    manager = DataAccessManager()
    manager.add_catalog(catalog, {"__default__": pipeline})
    manager.add_pipelines({"__default__": pipeline})
    tree = manager.create_modular_pipelines_tree_for_registered_pipeline("__default__")
    names = {graph_node.id: graph_node.name for graph_node in manager.nodes.as_dict().values()}
    listed = collections.Counter(names[child.id] for child in tree["__root__"].children)
    assert listed["params:shared"] == 1 and listed["params:alone"] == 1
