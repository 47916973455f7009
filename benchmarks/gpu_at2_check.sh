#!/usr/bin/env bash
# AT2 on a GPU machine whose python3 has torch and gpytorch but not this project installed.
# Beforehand, on a machine with the venv: .venv/bin/pip install --no-deps --target .gpu_site ConfigSpace==1.2.2 pandera==0.35.0 typeguard typing_inspect mypy_extensions more_itertools pyparsing pyyaml tqdm
# then run this script from the project root there (it only reads the vendored HyperRec data).
set -euo pipefail
export PYTHONPATH=src:.gpu_site
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, gpytorch; print(torch.__version__, gpytorch.__version__, torch.cuda.is_available())"
python3 - <<'PY'
import time, torch
from transfertune.core.catalog import ObservationCatalog
from transfertune.core.metrics import summary, to_markdown
from transfertune.methods.runner import build_episodes, run_episodes
c = ObservationCatalog.load("data/01_raw/hyperrec", "conf/base/spaces/hyperrec.yml", "val_top5_acc")
for methods in ({"at2": {"device": "cuda"}, "at2_cpu": {"method": "at2", "device": "cpu"}},
                {"at2_svgp_paper": {"method": "at2", "inference": "svgp", "device": "cuda",
                                    "svgp": {"inducing_points": 1000, "epochs": 200, "batch_size": 1024, "online_steps": 10}}}):
    t = time.time()
    r = run_episodes(build_episodes(c, methods, c.pairs[:1] if "at2_svgp_paper" in methods else c.pairs, 1, 100, 0), show_progress=False)
    print(to_markdown(summary(r)))
    print(r.groupby(["method", "pair"])["wall_time_s"].max().to_string())
    print("total", time.time() - t, flush=True)
PY
