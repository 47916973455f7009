"""No deprecation warnings of the libraries on every run (issue 33): Kedro's resolver
registration and linear_operator's ``torch.jit.script``, each silenced where it arises."""

import os
import subprocess
import sys
import warnings

from tests.conftest import ROOT


def test_the_config_loader_registers_its_resolvers_without_the_deprecated_api():
    from transfertune.config import ConfigLoader

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader = ConfigLoader(conf_source=str(ROOT / "conf"), base_env="base", default_run_env="local", runtime_params={"data_root": "/x"})
        assert loader["parameters"]["hts"]["store_dir"] == "/x/06_models/hts"  # the runtime_params resolver works


def test_importing_the_methods_does_not_warn_about_torch_jit_script():
    # a fresh interpreter: linear_operator warns once, at its first import
    code = "import warnings; warnings.filterwarnings('error', message='.*torch.jit.script'); import transfertune.methods.registry as r; r._load_builtins()"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch.jit.script" not in proc.stderr
