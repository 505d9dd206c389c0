"""RK-Net vs ResNet vs MLP on the offline digits over several training seeds (one run trains all three).

Usage: python benchmarks/rknet_seeds.py [--seeds 0 1 2 3 4] [--epochs N] [--out results/rknet_seeds.json]

Each seed trains the ``rk-net-digits`` config (same held-out test split, data seed 0) with
``lightning.seed_everything(seed)`` and records the test errors of the three models; the JSON holds
every run plus mean ± std (sample std, ddof=1) and the parameter counts.

The output file accumulates runs: each requested seed is trained again and replaces its stored run,
the stored runs of other seeds with the same config and ``--epochs`` are kept (``--seeds 5`` adds seed
5 to the stored 0-4), and the summary is over all stored runs of that configuration. A file of another
configuration is replaced. The file is written after every seed.
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


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # run_all.py passes no arguments: the default must be the seeds the committed results (and README) hold
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=None, help="override the config's max_epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rknet_seeds.json"))
    ap.add_argument("--replace", action="store_true",
                    help="discard what --out holds if its runs are of another configuration (or it is another file)")
    return ap


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    _seeds.check_seeds(ap, args.seeds)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    out = Path(args.out)
    same = {"config": load_config("rk-net-digits"), "epochs_override": args.epochs}
    runs = _seeds.stored_runs(out, same, replace=args.replace)
    for s in args.seeds:
        row = run_seed(s, args.epochs, args.threads)
        print(json.dumps(row), flush=True)
        runs = _seeds.merge_runs(runs, [row])
        summary, wins = _write(out, args, same, runs)
    print(json.dumps(summary, indent=2))
    print(f"RK-Net <= ResNet in {wins}/{len(runs)} runs (seeds {[r['seed'] for r in runs]}); written {out}")


def _write(out: Path, args: argparse.Namespace, same: dict, runs: list[dict]) -> tuple[dict, int]:
    summary = _seeds.summarise(runs, KEYS)
    wins = sum(r["test/error"] <= r["test/error_resnet"] for r in runs)
    result = {
        "benchmark": "rk-net-digits: test error over training seeds (360 held-out images, data seed 0)",
        **same,
        "runs": runs,
        "summary": summary,
        "rknet_le_resnet_runs": f"{wins}/{len(runs)}",
        "params": {k: runs[0][k] for k in ("params", "params_resnet", "params_mlp")},
        "hardware": f"{platform.processor() or platform.machine()}, torch threads={args.threads}",
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _seeds.write_json(out, result)
    return summary, wins


if __name__ == "__main__":
    main()
