"""Subsample benchmark: time to score every sample and how close adversarial subsets sit to the boundary.

    python benchmarks/subsample_bench.py                      # digits, default parameters
    python benchmarks/subsample_bench.py --ablation           # + fixed (lambda1, lambda2) without search
    python benchmarks/subsample_bench.py --source wine --threads 2

Prints one table: probe training time, scoring time for the whole source, attack success rate,
and the median perturbation norm ``||W . eps||`` of the full set, of the samples in the random
proxy subsets and in the adversarial proxy subsets (failed attacks count as infinitely far), with
a one-sided Mann-Whitney test of "adversarial < random". Settings come from
conf/base/parameters_subsample.yml (section ``adversarial_proxy``) unless overridden here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.stats import mannwhitneyu

from transfertune.core.device import pick_device
from transfertune.data import load_source
from transfertune.data.adversarial import AttackConfig, ClassifierConfig, adversarial_scores, data_box, perturbation_weights, train_model
from transfertune.data.samplers import adversarial_proxy_subsets, random_proxy_subsets

PARAMS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_subsample.yml"


def _defaults() -> dict:
    return yaml.safe_load(PARAMS.read_text())["subsample"]


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="digits", help="any name of transfertune.data.sources (default digits)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=None, help="attack iterations (default: parameters file)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on shared machines)")
    ap.add_argument("--ablation", action="store_true", help="also run fixed (lambda1, lambda2) pairs without search")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    params = _defaults()
    adv = params["adversarial_proxy"]
    rnd = params["random_proxy"]
    classifier = ClassifierConfig(**adv["classifier"])
    attack_values = {**adv["attack"], "seed": args.seed, "fixed_lambda": tuple(adv["attack"]["fixed_lambda"])}
    if args.iterations is not None:
        attack_values["iterations"] = args.iterations
    attack = AttackConfig(**attack_values)
    device = pick_device(args.device)
    progress = not args.no_progress

    source = load_source(args.source)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # pay torch's one-off optimiser import outside the timings
    t0 = time.perf_counter()
    model = train_model(source, classifier, device, args.seed, progress=progress)
    t_train = time.perf_counter() - t0
    lower, upper = data_box(source)
    weights = perturbation_weights(source.X, attack.weights, attack.weight_floor)

    runs = [("min_norm (Frank-Wolfe)", attack)]
    if args.ablation:
        for lam in ((1.0, 1.0), (1.0, 10.0), (1.0, 100.0)):
            runs.append((f"fixed lambda={lam[0]:g},{lam[1]:g}", AttackConfig(**{**attack_values, "weighting": "fixed", "fixed_lambda": lam})))

    metric = "accuracy" if source.task_type == "classification" else "R^2"
    print(f"\nsource {source.name}: {len(source)} samples, shape {source.sample_shape}, device {device}, torch threads {args.threads}")
    print(f"probe {classifier.model}: trained in {t_train:.1f} s, train {metric} {model.train_metric:.3f}")
    print(f"attack: {attack.iterations} iterations, batch {attack.batch_size}, c={attack.c}, target={attack.target}, scores={attack.scores}")
    print(f"subsets: {adv['n_subsets']} adversarial (ratio {adv['ratio']}, adversarial_fraction {adv['adversarial_fraction']}), "
          f"{rnd['n_subsets']} random (ratio {rnd['ratio']})\n")  # fmt: skip
    header = f"| {'weighting':<24} | score all (s) | total (s) | success | median full | median random | median adversarial | adv/rnd | MWU p |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, cfg in runs:
        result = adversarial_scores(model, source.X, cfg, lower, upper, weights, progress=progress)
        a = adversarial_proxy_subsets(source, result, adv["n_subsets"], adv["ratio"], adv["adversarial_fraction"], args.seed,
                                      pool_factor=adv["pool_factor"])  # fmt: skip
        r = random_proxy_subsets(source, rnd["n_subsets"], rnd["ratio"], args.seed, scores=result)
        norm_a = np.concatenate([m.perturbation_norm for m in a])
        norm_r = np.concatenate([m.perturbation_norm for m in r])
        # infinities (failed attacks) rank last, which is what "farther from the boundary" means
        p = mannwhitneyu(np.nan_to_num(norm_a, posinf=1e30), np.nan_to_num(norm_r, posinf=1e30), alternative="less").pvalue
        med_a, med_r = _median(norm_a), _median(norm_r)
        ratio = med_a / med_r if np.isfinite(med_r) and med_r > 0 else float("nan")
        print(f"| {label:<24} | {result.seconds:13.1f} | {t_train + result.seconds:9.1f} | {result.success_rate:7.1%} | "
              f"{_median(result.norm):11.4g} | {med_r:13.4g} | {med_a:18.4g} | {ratio:7.3f} | {p:5.0e} |")  # fmt: skip


if __name__ == "__main__":
    main()
