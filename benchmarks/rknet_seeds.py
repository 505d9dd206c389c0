"""RK-Net vs ResNet vs MLP on the offline digits over several training seeds (one run trains all three).

Usage: python benchmarks/rknet_seeds.py [--seeds 0 1 2] [--epochs N] [--out results/rknet_seeds.json]

Each seed trains the ``rk-net-digits`` config (same held-out test split, data seed 0) with
``lightning.seed_everything(seed)`` and records the test errors of the three models; the JSON holds
every run plus mean ± std (sample std, ddof=1) and the parameter counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from hybridzoo.zoo.registry import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _seeds  # noqa: E402

KEYS = ("test/error", "test/error_resnet", "test/error_mlp")


def run_seed(seed: int, epochs: int | None, threads: int) -> dict:
    row, model = _seeds.run_seed("rk-net-digits", seed, threads, KEYS, max_epochs=epochs)
    row.update(model.param_counts())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="override the config's max_epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rknet_seeds.json"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    runs = []
    for s in args.seeds:
        runs.append(run_seed(s, args.epochs, args.threads))
        print(json.dumps(runs[-1]), flush=True)
    summary = _seeds.summarise(runs, KEYS)
    wins = sum(r["test/error"] <= r["test/error_resnet"] for r in runs)
    result = {
        "benchmark": "rk-net-digits: test error over training seeds (360 held-out images, data seed 0)",
        "config": load_config("rk-net-digits"),
        "epochs_override": args.epochs,
        "runs": runs,
        "summary": summary,
        "rknet_le_resnet_runs": f"{wins}/{len(runs)}",
        "params": {k: runs[0][k] for k in ("params", "params_resnet", "params_mlp")},
        "hardware": f"{platform.processor() or platform.machine()}, torch threads={args.threads}",
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"RK-Net <= ResNet in {wins}/{len(runs)} runs; written {args.out}")


if __name__ == "__main__":
    main()
