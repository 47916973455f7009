"""Trials per minute of build_catalog's trainer with 1 and 2 Dask workers (default: this CPU).

    python benchmarks/train_throughput.py --workers 1 2
    python benchmarks/train_throughput.py --device cuda --workers 1 4 8 --trials 64

Trains HTS CNN trials (sampled from conf/base/spaces/hts_cnn.yml) on real digits class subsets
(5 classes, ~630 training / ~270 validation images of 8x8) for 3 epochs each; ``workers=1``
runs in-process, more starts a Dask LocalCluster (its start-up, spawning processes that import
torch, is included in the wall time). Any option of
``python -m transfertune.training.bench_throughput --help`` passes through.
"""

import sys

from transfertune.training.bench_throughput import main

if __name__ == "__main__":
    defaults = ["--data", "digits", "--device", "cpu", "--trials", "24"]
    sys.exit(main(defaults + sys.argv[1:]))
