"""The shared parameter check and path lookup of the pipelines."""

import pytest
from pydantic import BaseModel, ConfigDict, Field

from transfertune.core.params import PROJECT_ROOT, resolve_path, validate_params
from transfertune.errors import ConfigurationError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(1, ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Field(default_factory=Inner)
    name: str


def test_every_bad_key_is_named_with_its_prefix_in_one_error():
    assert validate_params(Outer, {"name": "a", "inner": {"k": 2}}, "demo").inner.k == 2
    with pytest.raises(ConfigurationError) as info:
        validate_params(Outer, {"inner": {"k": 0, "x": 1}}, "demo")
    message = str(info.value)
    assert message.startswith("bad parameters: ") and "\n" not in message
    assert "demo.inner.k: " in message and "demo.inner.x: " in message and "demo.name: " in message


def test_a_relative_path_is_found_from_the_working_directory_first_then_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("conf/base/parameters.yml") == PROJECT_ROOT / "conf/base/parameters.yml"
    (tmp_path / "conf/base").mkdir(parents=True)
    (tmp_path / "conf/base/parameters.yml").write_text("")
    assert resolve_path("conf/base/parameters.yml").resolve() == (tmp_path / "conf/base/parameters.yml").resolve()
    assert resolve_path("no/such/file.yml") == type(resolve_path("x"))("no/such/file.yml")
    assert resolve_path(tmp_path) == tmp_path
