"""Accuracy against cost of the shipped solver-in-the-loop model: SRC, NON, SOL, 2x grid and reference grid.

For each method, on the unseen test Reynolds numbers of the shipped card's data:
- the rollout's mean absolute velocity error against the reference (m/s), over ``rollout_steps`` coarse steps;
- the wall time of advancing one coarse step ``dt`` (ms; the 2x and reference grids take 2 and ``factor``
  substeps of their own), batch = the test Reynolds numbers, float32, one thread, median of repeats.

    .venv/bin/python benchmarks/solver_in_the_loop.py     # writes benchmarks/results/solver_in_the_loop.json
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPEATS = 5
STEPS = 10


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


def main() -> None:
    import lightning as L
    from hybridzoo.zoo import load_pretrained

    torch.set_num_threads(1)
    model = load_pretrained("solver-in-the-loop-ns").eval()
    dm = model.datamodule(progress=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    hp = dm.hparams
    batch = next(iter(dm.test_dataloader()))
    u0, v0, re = batch["u"][:, 0], batch["v"][:, 0], batch["re"]
    nu = model.viscosity(re)

    def hybrid(method):
        def advance(state):
            with torch.no_grad():
                return model.hybrid_step(state[0], state[1], re, state[2], method)
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
        return advance, (u, v, p)

    start = (u0, v0, None)
    rows = {
        "src": {"rollout_mae": metrics["test/rollout_mae_src"], "ms_per_step": per_step_ms(hybrid("src"), start)},
        "non": {"rollout_mae": metrics["test/rollout_mae_non"], "ms_per_step": per_step_ms(hybrid("non"), start)},
        "sol": {"rollout_mae": metrics["test/rollout_mae"], "ms_per_step": per_step_ms(hybrid("sol"), start)},
    }
    adv2, s2 = finer(2)
    rows["2x"] = {"rollout_mae": metrics["test/rollout_mae_2x"], "ms_per_step": per_step_ms(adv2, s2)}
    advr, sr = finer(hp.factor)
    rows["reference"] = {"rollout_mae": 0.0, "ms_per_step": per_step_ms(advr, sr)}
    sol = rows["sol"]
    result = {
        "model": "solver-in-the-loop-ns (shipped checkpoint)",
        "test_reynolds": [float(r) for r in re],
        "grid": f"{hp.nx}x{hp.ny} coarse, reference x{hp.factor}",
        "rollout_steps": hp.rollout_steps,
        "threads": 1,
        "device": "cpu",
        "machine": f"{platform.machine()} {platform.processor()}; shared 2-core host, timings noisy",
        "torch": torch.__version__,
        "methods": rows,
        "ratios": {
            "error_src_over_sol": rows["src"]["rollout_mae"] / sol["rollout_mae"],
            "error_non_over_sol": rows["non"]["rollout_mae"] / sol["rollout_mae"],
            "error_2x_over_sol": rows["2x"]["rollout_mae"] / sol["rollout_mae"],
            "time_sol_over_src": sol["ms_per_step"] / rows["src"]["ms_per_step"],
            "time_reference_over_sol": rows["reference"]["ms_per_step"] / sol["ms_per_step"],
            "time_2x_over_sol": rows["2x"]["ms_per_step"] / sol["ms_per_step"],
        },
    }
    out = HERE / "results" / "solver_in_the_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
