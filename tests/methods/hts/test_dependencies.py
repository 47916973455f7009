"""`import pySOT` works with the distributions this project declares.

pySOT 0.3.3 imports ``six`` (pySOT/experimental_design/experimental_design.py) but does not declare
it: in a fresh venv with pySOT alone, ``import pySOT`` raises ``ModuleNotFoundError: No module named
'six'`` (checked by hand once, docs/methods/hts.md). A test that builds a venv would take minutes and
the network; these tests import pySOT in a fresh interpreter in which only the distributions of a
given set can be imported (any other installed distribution raises ModuleNotFoundError, as in a venv
that lacks it; optional imports of numpy, joblib or scikit-learn then fall back as they do there):

- pySOT's own declared requirements (recursively): the import fails on ``six``, the upstream bug;
- those plus the project's *direct* dependencies: the import works. This fails if ``six`` is
  removed from pyproject.toml. (A full install of the project also gets six from pandas ->
  python-dateutil, so the declaration guards against depending on that accident);
- every distribution a fresh ``pip install`` of the project brings: the import works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement

from tests.conftest import ROOT


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    names = set()
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.add(canonical(requirement.name))
    return names


def closure(roots: set[str]) -> set[str]:
    """The distributions that installing ``roots`` brings (declared requirements, recursively)."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(declared(metadata.requires(name) or []))
        except metadata.PackageNotFoundError:
            pass
    return seen


def project_dependencies() -> set[str]:
    return declared(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


IMPORT_WITH_ONLY = """
import json, re, sys
from importlib import metadata
allowed = set(json.loads(sys.argv[1]))
owners = metadata.packages_distributions()

class OnlyAllowed:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = owners.get(top)
        if dists and top not in sys.stdlib_module_names and not any(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in dists):
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        return None

sys.meta_path.insert(0, OnlyAllowed())
import pySOT
print("imported")
"""


def import_pysot_with_only(allowed: set[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", IMPORT_WITH_ONLY, json.dumps(sorted(allowed))], capture_output=True, text=True)


def test_pysot_alone_lacks_six():
    result = import_pysot_with_only(closure({"pysot"}))
    assert result.returncode != 0 and "No module named 'six'" in result.stderr


def test_pysot_imports_with_the_projects_direct_dependencies():
    assert {"six", "pysot"} <= project_dependencies()
    result = import_pysot_with_only(closure({"pysot"}) | project_dependencies())
    assert result.returncode == 0 and result.stdout.strip() == "imported", result.stderr[-500:]


def test_pysot_imports_in_a_fresh_install_of_the_project():
    result = import_pysot_with_only(closure(project_dependencies()))
    assert result.returncode == 0 and result.stdout.strip() == "imported", result.stderr[-500:]


def test_poap_is_declared_because_the_hts_searchers_import_it():
    assert "poap" in project_dependencies()
