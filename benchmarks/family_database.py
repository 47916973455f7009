"""Write a task family's tuning database (HyperRec layout) from the trials a store holds, without
training (issue 27, item 4; transfertune.data.testbed.write_family_database).

    python benchmarks/family_database.py --family mnist1d_scale \\
        --store data/07_model_output/testbed_card/mnist1d_scale-s0/full/_trials --out data/01_raw/mnist1d_scale

The store is the one `benchmarks/testbed_card.py --family mnist1d_scale --n-configs 100` trains (or
`kedro run --pipeline=build_catalog` with tasks.from: family and that store_dir); the database holds
the longest prefix of the 100 LHS configs that every task and seed has finished. Prints the database's
median Spearman between tasks' config rankings (HyperRec's: 0.93).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from transfertune.data.families import get_family
from transfertune.data.testbed import response_tables, spearman_matrix, write_family_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-configs", type=int, default=100)
    parser.add_argument("--pairs", default='{"method": "leave_one_out", "n_train": 8, "n_pairs": 10, "seed": 0}')
    args = parser.parse_args()
    info = write_family_database(get_family(args.family), args.store, args.out, args.n_configs, pairs=json.loads(args.pairs))
    Y = response_tables(pd.read_parquet(f"{args.out}/observations.parquet"), "val_acc")[0]
    rho = spearman_matrix(Y)[np.triu_indices(len(Y), 1)]
    print(f"{args.out}: {len(info['tasks'])} tasks x {info['n_configs']} configs (of {info['n_configs_planned']}) x {len(info['seeds'])} seeds x "
          f"{info['epochs']} epochs; {info['trials_failed']} diverged trials (padded); median Spearman between tasks' config rankings "
          f"{np.median(rho):.3f}")


if __name__ == "__main__":
    main()
