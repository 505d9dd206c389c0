"""UDE Lotka-Volterra: training wall time to the distillation tolerance and peak memory,
our fixed-step RK4 vs torchdiffeq's adaptive dopri5 (the peer a user would otherwise pick), same run.

    python benchmarks/ude.py [--quick]      -> benchmarks/results/ude.json

Each solver trains in its own subprocess (so peak RSS is its own), with the packaged config's
schedule, then distils; "reached" says whether beta, gamma, delta came within 5 % of the truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def worker(method: str, quick: bool, out: str) -> None:
    import lightning as L
    import torch
    from hybridzoo.zoo import create_datamodule, create_model, distil

    torch.set_num_threads(1)
    L.seed_everything(0)
    overrides = {"method": method}
    if quick:
        overrides.update(adam_epochs=40, lbfgs_epochs=10, window_epochs=5)
    model = create_model("ude-lotka-volterra", **overrides)
    dm = create_datamodule("ude-lotka-volterra")
    dm.prepare_data()
    trainer = L.Trainer(max_epochs=model.total_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_s = time.perf_counter() - start
    result = distil(model, dm, backend="sindy")
    total_s = time.perf_counter() - start
    truth = {"beta": 0.4, "gamma": 0.1, "delta": 0.4}
    rel = {k: abs(result.metrics[f"distil/{k}"] - v) / v for k, v in truth.items()}
    json.dump({
        "method": method, "epochs": model.total_epochs, "train_s": train_s, "train_plus_distil_s": total_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "relative_coefficient_error": rel, "reached_5pct": all(v < 0.05 for v in rel.values()),
        "extrap_mse_symbolic": result.metrics["test/extrap_mse_symbolic"],
    }, open(out, "w"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="shorter schedule (smoke run)")
    p.add_argument("--worker", nargs=2, metavar=("METHOD", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker[0], a.quick, a.worker[1])
    RESULTS.mkdir(exist_ok=True)
    runs = {}
    for method in ("rk4", "dopri5"):
        out = RESULTS / f".ude_{method}.json"
        cmd = [sys.executable, __file__, "--worker", method, str(out)] + (["--quick"] if a.quick else [])
        subprocess.run(cmd, check=True)
        runs[method] = json.loads(out.read_text())
        out.unlink()
        print(method, runs[method], flush=True)
    report = {
        "benchmark": "ude-lotka-volterra training to distillation tolerance",
        "quick": a.quick,
        "runs": runs,
        "train_time_ratio_dopri5_over_rk4": runs["dopri5"]["train_s"] / runs["rk4"]["train_s"],
        "peak_rss_ratio_dopri5_over_rk4": runs["dopri5"]["peak_rss_mb"] / runs["rk4"]["peak_rss_mb"],
    }
    (RESULTS / "ude.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
