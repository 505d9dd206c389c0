"""Accuracy against cost of the shipped solver-in-the-loop models: SRC, NON, SOL, 2x grid and reference grid.

For each method, on the unseen test Reynolds numbers of the shipped card's data:
- the rollout's mean absolute velocity error against the reference (m/s), over ``rollout_steps`` coarse steps;
- the wall time of advancing one coarse step ``dt`` (ms; the 2x and reference grids take 2 and ``factor``
  substeps of their own), batch = the test Reynolds numbers, float32, one thread, median of repeats;
- the same errors over ``LONG_STEPS`` coarse steps, four times the card's rollouts (the data are simulated
  again for that length: a few minutes), to see which corrections stay stable.

    .venv/bin/python benchmarks/solver_in_the_loop.py [NAME ...]   # writes benchmarks/results/<NAME, - as _>.json
    .venv/bin/python benchmarks/solver_in_the_loop.py NAME --out PATH   # one NAME, written to PATH
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from hybridzoo.datamodules.cache import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own helpers
from _out import check_out  # noqa: E402

HERE = Path(__file__).resolve().parent
REPEATS = 5
STEPS = 10
LONG_STEPS = 400
BATCHES = (2, 16)
NAMES = ("solver-in-the-loop-ns", "solver-in-the-loop-ns-large")


def per_step_ms(advance, state) -> float:
    """Median over ``REPEATS`` of the time of ``STEPS`` calls of ``advance``, per call, in ms."""
    advance(state)
    times = []
    for _ in range(REPEATS):
        s = state
        t = time.perf_counter()
        for _ in range(STEPS):
            s = advance(s)
        times.append((time.perf_counter() - t) / STEPS)
    return 1e3 * statistics.median(times)


def step_times(model, dm, batch: dict, size: int) -> dict[str, float]:
    """ms per coarse step of each method at batch ``size`` (the test states, repeated)."""
    hp = dm.hparams
    idx = torch.arange(size) % batch["re"].shape[0]
    u0, v0, re = batch["u"][idx, 0], batch["v"][idx, 0], batch["re"][idx]
    nu = model.viscosity(re)

    def hybrid(method):
        def advance(state):
            with torch.no_grad():
                return model.hybrid_step(state[0], state[1], re, state[2], method, validate=False)
        return advance

    def finer(factor):
        solver = dm.solver(factor, validate=False)
        # the test state, prolonged to the finer grid and projected: a developed wake, as the timed runs see
        u, v = (torch.nn.functional.interpolate(f[:, None], size=shape, mode="bilinear")[:, 0]
                for f, shape in ((u0, solver.u_shape), (v0, solver.v_shape)))
        u, v, p = solver.project(*solver.apply_boundaries(u, v), 1.0)

        def advance(state):
            uu, vv, pp = state
            with torch.no_grad():
                for _ in range(factor):
                    uu, vv, pp = solver.step(uu, vv, hp.dt / factor, nu, pp)
            return uu, vv, pp
        return per_step_ms(advance, (u, v, p))

    out = {m: per_step_ms(hybrid(m), (u0, v0, None)) for m in ("src", "non", "sol")}
    out.update({"2x": finer(2), "reference": finer(hp.factor)})
    return out


def long_rollouts(model, dm, steps: int = LONG_STEPS) -> dict:
    """Rollout error of every method over ``steps`` coarse steps (far beyond the card's), at the test Re."""
    from hybridzoo.datamodules.wake_flow import WakeFlowDataModule
    from hybridzoo.zoo.solver_in_the_loop import velocity_mae

    hp = dict(dm.hparams)
    # the same simulations (same seed, warm-up and Re), recorded for longer; one training Re keeps it cheap
    hp.update(steps=steps, rollout_steps=steps, re_train=hp["re_train"][:1], re_val=hp["re_val"][:1],
              cache_dir=None, progress=True)
    long_dm = WakeFlowDataModule(**hp)
    long_dm.setup()
    batch = next(iter(long_dm.test_dataloader()))
    preds = model.rollouts(batch)
    curves = {m: velocity_mae(u, v, batch["u"][:, 1:], batch["v"][:, 1:]).mean(0) for m, (u, v) in preds.items()}
    windows = {"all": slice(0, steps), "first_100": slice(0, 100), f"last_{steps // 4}": slice(-(steps // 4), None)}
    return {"steps": steps, "test_reynolds": [float(r) for r in batch["re"]],
            "rollout_mae": {w: {m: float(c[sl].mean()) for m, c in curves.items()} for w, sl in windows.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(NAMES), help=f"shipped checkpoints (default: {NAMES})")
    parser.add_argument("--out", default=None,
                        help="output JSON, for a single NAME (default: benchmarks/results/<NAME, - as _>.json)")
    parser.add_argument("--replace", action="store_true", help="overwrite --out even if it is no results file")
    args = parser.parse_args()
    if args.out is not None and len(args.names) != 1:
        # one file per model: a second NAME would overwrite the first one's results
        parser.error(f"--out needs exactly one NAME, got {len(args.names)}: {' '.join(args.names)}")
    if args.out is not None:  # found now, not after the 400-step rollouts
        check_out(parser.error, Path(args.out), "long_rollouts", args.replace)
    from hybridzoo.zoo.registry import list_models

    ns_models = {r["name"] for r in list_models() if r["name"].startswith("solver-in-the-loop")}
    unknown = [n for n in args.names if n not in ns_models]
    if unknown:  # checked before the first model's run, which takes minutes
        parser.error(f"unknown solver-in-the-loop checkpoint(s) {unknown}; choose from {sorted(ns_models)}")
    torch.set_num_threads(1)
    for name in args.names:
        measure(name, Path(args.out) if args.out is not None else None)


def measure(name: str, out: Path | None = None) -> None:
    import lightning as L
    from hybridzoo.zoo import load_pretrained

    model = load_pretrained(name).eval()
    dm = model.datamodule(progress=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    hp = dm.hparams
    batch = next(iter(dm.test_dataloader()))
    errors = {"src": metrics["test/rollout_mae_src"], "non": metrics["test/rollout_mae_non"],
              "sol": metrics["test/rollout_mae"], "2x": metrics["test/rollout_mae_2x"], "reference": 0.0}
    # per-step cost depends on the batch: small grids are bound by per-kernel overhead, large batches by cells
    timings = {str(b): step_times(model, dm, batch, b) for b in BATCHES}
    rows = {m: {"rollout_mae": e, "ms_per_step": timings[str(BATCHES[0])][m]} for m, e in errors.items()}
    sol = rows["sol"]
    result = {
        "model": f"{name} (shipped checkpoint, CNN width {model.hparams.width}, depth {model.hparams.depth})",
        "test_reynolds": [float(r) for r in batch["re"]],
        "grid": f"{hp.nx}x{hp.ny} coarse, reference x{hp.factor}",
        "rollout_steps": hp.rollout_steps,
        "threads": 1,
        "device": "cpu",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "methods": rows,
        "ratios": {
            "error_src_over_sol": rows["src"]["rollout_mae"] / sol["rollout_mae"],
            "error_non_over_sol": rows["non"]["rollout_mae"] / sol["rollout_mae"],
            "error_2x_over_sol": rows["2x"]["rollout_mae"] / sol["rollout_mae"],
        },
        "ms_per_step_by_batch": timings,
        "time_ratios_by_batch": {
            b: {"sol_over_src": t["sol"] / t["src"], "reference_over_sol": t["reference"] / t["sol"],
                "2x_over_sol": t["2x"] / t["sol"]} for b, t in timings.items()
        },
    }
    result["long_rollouts"] = long_rollouts(model, dm)
    out = out or HERE / "results" / f"{name.replace('-', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
