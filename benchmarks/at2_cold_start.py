"""How novel is a new task? AT2's cold-start variances and the training-task residuals they are
matched to (docs/methods/at2.md, "Cold start").

    python benchmarks/at2_cold_start.py                      # the 5 HyperRec pairs
    python benchmarks/at2_cold_start.py --db /tmp/ident_db   # another database (identifiability.py --db)

For each pair's training tasks: each task's curves on the configs the others rank best minus the
others' (weighted) average there (``model.leave_one_task_out_residuals``), split into the part
shared by those configs and the config-specific rest, as root mean squares at a few epochs; then the
variances AT2 starts the test task with (novelty ``nu``, the constant offset's ``mean_var``, the
weight perturbation's ``weight_var``) and the unexplained share of its task variance.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hyperrec import load_database
from transfertune.methods.at2.model import ExactAT2, KernelChoice, leave_one_task_out_residuals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=None, help="a database folder with its space.yml (default: HyperRec)")
    parser.add_argument("--metric", default="val_acc", help="with --db: the metric column")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--epochs", default="1,5,10,25,50,75", help="epochs at which to print the residuals")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: more threads only contend on the shared 2 cores
    catalog = load_database(args.db, args.metric)
    epochs = [e for e in (int(x) for x in args.epochs.split(",")) if e <= catalog.max_epoch]
    print(f"rms of the leave-one-task-out residuals at epochs {epochs} (shared by the top configs | config-specific)\n")
    print("| pair | shared | specific | nu | mean_var | weight_var | unexplained |\n| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for pair in catalog.pairs:
        grids = catalog.grids(pair.train, args.data_seed)
        torch.manual_seed(0)
        model = ExactAT2(KernelChoice(), catalog.space, catalog.encoded_configs, grids)
        r = leave_one_task_out_residuals(model.Y, model.cold_start_configs, model.mixture().A.detach()).numpy()
        shared = r.mean(1)
        specific = r - shared[:, None, :]
        rms_shared = np.sqrt((shared**2).mean(0))[[e - 1 for e in epochs]]
        rms_specific = np.sqrt((specific**2).mean((0, 1)))[[e - 1 for e in epochs]]
        off = model.offsets()
        with torch.no_grad():
            mix = model.mixture()
            print(f"| {pair.test} | {' '.join(f'{v:.3f}' for v in rms_shared)} | {' '.join(f'{v:.3f}' for v in rms_specific)} "
                  f"| {float(mix.nu):.4f} | {float(off.mean_var):.4f} | {float(off.weight_var):.4f} | {float(mix.unexplained):.3f} |")


if __name__ == "__main__":
    main()
