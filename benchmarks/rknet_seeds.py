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
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hybridzoo.zoo.registry import create_datamodule, create_model, load_config

KEYS = ("test/error", "test/error_resnet", "test/error_mlp")


def run_seed(seed: int, epochs: int | None, threads: int) -> dict:
    torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    model = create_model("rk-net-digits")
    dm = create_datamodule("rk-net-digits")
    trainer_cfg = dict(load_config("rk-net-digits").get("trainer") or {})
    if epochs is not None:
        trainer_cfg["max_epochs"] = epochs
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_cfg,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - start
    tested = trainer.test(model, datamodule=dm, verbose=False)[0]
    row = {"seed": seed, "wall_time_s": round(wall, 1), "epochs": trainer.current_epoch}
    row.update({k: float(tested[k]) for k in KEYS})
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
    summary = {}
    for k in KEYS:
        vals = [r[k] for r in runs]
        summary[k] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
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
