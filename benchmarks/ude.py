"""UDE Lotka-Volterra: cost of training with our fixed-step RK4 vs torchdiffeq's adaptive dopri5 (the peer a
user would otherwise pick), each on the packaged config's fixed schedule, then distilled.

dopri5 runs twice: at the library's default tolerances (rtol 1e-7, atol 1e-9: ``dopri5``) and at looser ones
(rtol 1e-5, atol 1e-7: ``dopri5_rtol1e-5``), since its cost, unlike RK4's, follows the tolerance asked of it.

    python benchmarks/ude.py [--quick] [--out PATH]   -> benchmarks/results/ude.json

``--quick`` is a smoke run whose numbers are not results: it writes ``ude_quick.json`` in the system's
temporary directory unless ``--out`` is given. The workers' files go to a temporary directory as well.

Each solver trains in its own subprocess, with the packaged config's schedule (a fixed number of epochs,
``adam_epochs + lbfgs_epochs``; ``--quick``: a shorter one, a smoke run), then distils with SINDy. The
distilled model's constants are fine-tuned and tested with RK4 whichever solver trained the hybrid, so that
only training differs, and so that a formula that blows up ends in NaN, which the distillation catches (it
keeps the regression's constants), rather than in dopri5 shrinking its step without end (an ``underflow
in dt`` error or unbounded memory). Per solver:

- ``fixed_schedule_train_s``: wall time of ``Trainer.fit`` over that fixed schedule. It is not the time to
  reach a tolerance: both solvers run the same epochs, and ``reached_5pct`` says afterwards whether the
  distilled beta, gamma, delta came within 5 % of the truth.
- ``train_rss_growth_mb``: the memory training adds: the peak resident set size during ``Trainer.fit``
  (sampled every 2 ms) minus the resident set size just before it. The process' own peak (``ru_maxrss``)
  would mostly measure the ~400 MB of torch and Lightning that both solvers share.
- ``autograd_saved_mb``: bytes autograd keeps for the backward pass of one loss evaluation on the whole
  training window (the L-BFGS phase's objective) by the trained model, counted exactly with saved-tensor
  hooks: the part of training memory that grows with the solver's number of steps.
- ``nfe_full_window``: vector-field evaluations of that forward pass (adaptive steps depend on the model).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TRUTH = {"beta": 0.4, "gamma": 0.1, "delta": 0.4}


def rss_mb() -> float:
    """The process' current resident set size (MiB), from ``/proc/self/statm`` (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Sample :func:`rss_mb` in a thread while the ``with`` block runs; ``peak_mb`` is the largest sample."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


def graph_cost(model: Any, batch: dict[str, Any]) -> tuple[float, int]:
    """``(autograd_saved_mb, nfe)`` of one loss evaluation on the whole training window of ``batch``."""
    import torch

    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    calls = 0
    field = model.vector_field

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return field(*args, **kwargs)

    model.vector_field = counted  # an instance attribute shadows the method for this one call
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.trajectory_loss(batch)
    finally:
        del model.vector_field
    del loss
    return saved / 2**20, calls


# run name -> model settings
RUNS: dict[str, dict[str, Any]] = {
    "rk4": {"method": "rk4"},
    "dopri5": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-9},
    "dopri5_rtol1e-5": {"method": "dopri5", "rtol": 1e-5, "atol": 1e-7},
}


def worker(run: str, quick: bool, out: str) -> None:
    import lightning as L
    import torch
    from hybridzoo.zoo import create_datamodule, create_model, distil

    torch.set_num_threads(1)
    L.seed_everything(0)
    schedule = dict(RUNS[run])
    if quick:
        schedule.update(adam_epochs=40, lbfgs_epochs=10, window_epochs=5)
    model = create_model("ude-lotka-volterra", **schedule)
    dm = create_datamodule("ude-lotka-volterra")
    dm.prepare_data()
    dm.setup("fit")
    trainer = L.Trainer(max_epochs=model.total_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    with PeakRSS() as peak:
        before_mb = peak.peak_mb
        trainer.fit(model, datamodule=dm)
    train_s = time.perf_counter() - start
    batch = next(iter(dm.train_dataloader()))  # the packaged config has no batch_size: every trajectory
    saved_mb, nfe = graph_cost(model, batch)
    model.hparams.method = "rk4"  # distil and test alike for both solvers (see the module docstring)
    distil_start = time.perf_counter()
    result = distil(model, dm, backend="sindy")
    distil_s = time.perf_counter() - distil_start
    rel = {k: abs(result.metrics[f"distil/{k}"] - v) / v for k, v in TRUTH.items()}
    with open(out, "w") as f:
        json.dump({
            "run": run, **RUNS[run], "epochs": model.total_epochs,
            "fixed_schedule_train_s": train_s, "train_plus_distil_s": train_s + distil_s,
            "rss_before_fit_mb": before_mb, "train_rss_growth_mb": peak.peak_mb - before_mb,
            "autograd_saved_mb": saved_mb, "nfe_full_window": nfe,
            "relative_coefficient_error": rel, "reached_5pct": all(v < 0.05 for v in rel.values()),
            "extrap_mse_symbolic": result.metrics["test/extrap_mse_symbolic"],
        }, f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter schedule (smoke run)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output JSON (default: {RESULTS / 'ude.json'}; with --quick: "
                        f"{Path(tempfile.gettempdir()) / 'ude_quick.json'})")
    p.add_argument("--worker", nargs=2, metavar=("RUN", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker[0], a.quick, a.worker[1])
    # a smoke run's numbers must not replace the committed results
    out_path = a.out or (Path(tempfile.gettempdir()) / "ude_quick.json" if a.quick else RESULTS / "ude.json")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ude_bench_") as tmp:
        for run in RUNS:
            out = Path(tmp) / f"ude_{run}.json"
            cmd = [sys.executable, __file__, "--worker", run, str(out)] + (["--quick"] if a.quick else [])
            subprocess.run(cmd, check=True)
            runs[run] = json.loads(out.read_text())
            print(run, runs[run], flush=True)
    keys = {"fixed_schedule_train_time": "fixed_schedule_train_s", "train_rss_growth": "train_rss_growth_mb",
            "autograd_saved": "autograd_saved_mb"}

    def ratio(run: str, key: str) -> float | None:
        base = runs["rk4"][keys[key]]
        return runs[run][keys[key]] / base if base > 0 else None

    report = {
        "benchmark": "ude-lotka-volterra: fixed training schedule with rk4 vs dopri5 (two tolerances), then "
                     "distillation",
        "quick": a.quick,
        "runs": runs,
        **{f"{key}_ratio_{run}_over_rk4": ratio(run, key) for run in RUNS if run != "rk4"
           for key in ("fixed_schedule_train_time", "train_rss_growth", "autograd_saved")},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
