"""The guard in conftest that fails a test writing into the project, tried on a stand-in tree."""

from tests.conftest import ROOT, changed_paths, tree_state


def test_guard_sees_new_changed_and_removed_paths_but_not_caches(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.yml").write_text("a: 1\n")
    (tmp_path / "old.txt").write_text("x")
    before = tree_state(tmp_path)
    assert changed_paths(before, tree_state(tmp_path)) == []

    (tmp_path / "mlartifacts" / "0123").mkdir(parents=True)  # an empty folder left behind
    (tmp_path / "conf" / "a.yml").write_text("a: 22\n")  # a changed file
    (tmp_path / "old.txt").unlink()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert changed_paths(before, tree_state(tmp_path)) == ["conf/a.yml", "mlartifacts", "mlartifacts/0123", "old.txt"]


def test_guard_watches_this_project():
    state = tree_state(ROOT)
    assert "pyproject.toml" in state and "src/transfertune/hooks.py" in state
    assert not any(part in ("__pycache__", ".git") for path in state for part in path.split("/"))
