"""Trials per minute of the train stage, for 1..n workers on CPU or GPU.

Runs where only torch, numpy, pandas and pyarrow are installed (no Kedro, MLflow or ConfigSpace;
Dask only when ``--workers`` asks for more than one)::

    PYTHONPATH=src python3 -m transfertune.training.bench_throughput --device cuda --workers 1 4 8

The data is either real digits class subsets (``--data digits``, scikit-learn's bundled set) or
synthetic (class-dependent Gaussian images, so accuracy rises and the run shows that training
works) shaped like a digits subset (``--shape 1 8 8``) or a CIFAR subset (``--shape 3 32 32``). Configs are sampled from the model's space YAML. Each
worker count trains the same trials into a fresh temporary store, so the numbers include writing
the trial files. Prints one table row per worker count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SPACES = Path(__file__).resolve().parents[3] / "conf" / "base" / "spaces"


def sample_space(model: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configs of ``conf/base/spaces/<space>.yml``: through ConfigSpace when installed,
    else by independent uniform / log-uniform draws over the ranges (the spaces of the four
    target models have no conditions, so both sample the same distribution)."""
    from transfertune.training.models import get_model_spec

    spec = get_model_spec(model)
    path = SPACES / f"{spec.space}.yml"
    try:
        from transfertune.core.spaces import SearchSpace
    except ImportError:
        SearchSpace = None  # noqa: N806 - ConfigSpace absent (the GPU host)
    if SearchSpace is not None:
        return SearchSpace.from_yaml(path).sample(n, seed)
    import yaml

    rng = np.random.default_rng(seed)
    hps = yaml.safe_load(path.read_text())["hyperparameters"]
    configs = []
    for _ in range(n):
        config: dict[str, Any] = {}
        for hp in hps:
            if hp["type"] == "categorical":
                config[hp["name"]] = hp["choices"][int(rng.integers(len(hp["choices"])))]
                continue
            lo, hi = float(hp["lower"]), float(hp["upper"])
            u = rng.random()
            value = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))) if hp.get("log") else lo + u * (hi - lo)
            config[hp["name"]] = int(np.clip(round(value), lo, hi)) if hp["type"] == "integer" else value
        configs.append(config)
    return configs


def synthetic_tasks(n_tasks: int, shape: tuple[int, ...], n_classes: int, n_samples: int, seed: int = 0) -> list[Any]:
    """``n_tasks`` tasks of ``n_samples`` samples shaped ``shape``: class means plus noise."""
    from transfertune.training.tasks import task_from_arrays

    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(n_tasks):
        means = rng.normal(size=(n_classes, *shape)).astype(np.float32)
        y = rng.integers(0, n_classes, size=n_samples)
        X = means[y] + 1.5 * rng.normal(size=(n_samples, *shape)).astype(np.float32)
        tasks.append(task_from_arrays(f"synthetic{t}", X, y, n_classes=n_classes, split_seed=t))
    return tasks


def digits_tasks(n_tasks: int, n_classes: int, seed: int = 0) -> list[Any]:
    """Real digits class subsets (scikit-learn's bundled 8x8 digits, through transfertune.data)."""
    from transfertune.data import load_source
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import tasks_from_manifests

    manifests = class_subsets(load_source("digits"), n_tasks, n_classes, None, seed)
    return tasks_from_manifests(manifests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--model", default="hts_cnn")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=16, help="trials per worker count")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", choices=["synthetic", "digits"], default="synthetic",
                        help="digits: real class subsets (needs scikit-learn); synthetic: --shape/--samples")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs="+", default=[1, 8, 8], help="C H W (or F for tables)")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--samples", type=int, default=900, help="samples per task (70%% train)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--option", action="append", default=[], help="model option key=value, e.g. depth=18")
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from transfertune.core.device import pick_device
    from transfertune.training.runner import TrainSettings, make_jobs, run_trials
    from transfertune.training.store import TrialStore

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    options = {k: int(v) if v.isdigit() else v for k, v in (o.split("=", 1) for o in args.option)}
    if args.data == "digits":
        tasks = digits_tasks(args.tasks, args.classes)
    else:
        tasks = synthetic_tasks(args.tasks, tuple(args.shape), args.classes, args.samples)
    per_task = -(-args.trials // len(tasks))
    configs = sample_space(args.model, per_task, seed=0)
    settings = TrainSettings(
        args.model, args.epochs, options=options, device=str(device), amp=not args.no_amp, torch_threads=args.threads
    )
    jobs = make_jobs(tasks, configs, [0], settings)[: args.trials]
    data = {t.name: t for t in tasks}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "-"
    print(f"model={args.model} data={args.data} input={tasks[0].input_shape} train+val/task={len(tasks[0].X_train)}+{len(tasks[0].X_val)} epochs={args.epochs} "
          f"trials={len(jobs)} device={device} ({gpu}) torch={torch.__version__} amp={settings.amp and device.type == 'cuda'}")
    # trials/min counts the whole call (Dask start-up: spawning workers that import torch and
    # open a CUDA context); steady/min counts from the first to the last finished trial.
    print(f"{'workers':>7} | {'trials':>6} | {'failed':>6} | {'wall_s':>7} | {'trials/min':>10} | {'steady/min':>10} | {'mean val_acc':>12}")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            done: list[float] = []
            report = run_trials(
                jobs, data, settings, TrialStore(tmp), workers=workers, progress=False,
                on_trial_done=lambda summary, rep: done.append(time.perf_counter()),
            )
            wall = time.perf_counter() - t0
        steady = 60 * (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else float("nan")
        accs = [t.get("val_acc", float("nan")) for t in report.trials]
        if report.errors:
            print(f"  {len(report.errors)} trial(s) raised, first: {report.errors[0]['error']}", file=sys.stderr)
        print(f"{workers:>7} | {report.ran:>6} | {report.failed:>6} | {wall:>7.1f} | {60 * report.ran / wall:>10.1f} | {steady:>10.1f} | {np.nanmean(accs) if accs else float('nan'):>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
