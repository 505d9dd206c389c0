"""2-D incompressible Navier-Stokes step: hybridzoo's ``NavierStokes2D`` vs PhiFlow (torch backend), same problems.

Measures on the CPU, one thread, float32, batch 1, median of a few repeats after a warm-up call:
``forward_ms`` (one step: semi-Lagrangian advection, explicit diffusion, projection, under ``no_grad``) and
``forward_backward_ms`` (that step plus the backward pass of ``sum(u² + v²)`` w.r.t. the velocity before it),
with max |divergence| of fluid cells after the step, pressure-solve iterations and the loss as sanity checks.
Problems, from the same analytic initial fields, timed at the state after one step (``DIFFERENCES`` lists the rest):
``box``: periodic 2π x 2π, ``n x n`` cells, a few stream-function modes, dt = 0.5 h, nu = 0.01 (ours: FFT solve);
``wake``: the zoo's cylinder channel (``wake_solver``, Re 100), ``nx = n``, ``ny = n / 2`` cells ("256" is 256 x 128).
Both pressure solves start from zero and stop at ``||r|| <= 1e-5 ||b||``. PhiFlow runs eagerly and under
``math.jit_compile``; ``speedup_vs_phiflow_best_mode`` divides its faster time by ours (> 1: ours is faster).

A solve that stops at its iteration cap (PhiFlow's ``MAX_ITER``) above the tolerance is cut short, so its time
is not that of a converged solve and a ratio against it is not comparable. Each row records both libraries'
forward and adjoint pressure iterations and convergence; each speed-up carries ``converged`` per ratio
(forward: the forward solves; forward + backward: the adjoint ones too), ``speedup_range_converged`` spans
only the converged ratios and ``unconverged_rows`` lists the others with their iteration counts.
:func:`summarise` recomputes these entries from the rows, also of an existing results file (``--resummarise``).

PhiFlow runs in its own venv, ``benchmarks/.venv-phiflow``, as a subprocess (``--peer``) whose JSON is merged;
without that venv, or when the peer fails, the script exits with status 1 and writes nothing. ``make
bench-peers`` creates it (torch first, so that phiflow keeps the CPU wheel):

    python3 -m venv benchmarks/.venv-phiflow
    benchmarks/.venv-phiflow/bin/pip install torch==2.13.0 && benchmarks/.venv-phiflow/bin/pip install phiflow

    .venv/bin/python benchmarks/navier_stokes.py [--out PATH]   # writes benchmarks/results/navier_stokes.json
    .venv/bin/python benchmarks/navier_stokes.py --resummarise [--out PATH]   # redo the summary, no timing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own helpers
from _out import check_out  # noqa: E402

SIZES = (64, 128, 256)
REPEATS = {64: 20, 128: 10, 256: 5}
PEER_REPEATS = {64: 3, 128: 3, 256: 1}  # a PhiFlow 256-wake backward takes > 10 s
PROBLEMS = ("box", "wake")
TOL = 1e-5  # relative residual of the pressure solves (our float32 default)
MAX_ITER = 1000  # PhiFlow's default cap; ours is 500 but stops in far fewer
OURS_MAX_ITER = 500  # NavierStokes2D's max_pressure_iter default
SPEEDUP_KEYS = ("forward_ms", "forward_backward_ms")
BOX_NU, BOX_CFL = 0.01, 0.5
MODES = ((1, 2, 0.3), (2, -1, 1.1), (3, 1, 2.0), (-1, 3, 0.5))  # stream function modes (kx, ky, phase)
WAKE = {"length_x": 8.0, "center": (2.0, 2.0), "diameter": 1.0, "inflow_speed": 1.0}
WAKE_RE, WAKE_CFL, KICK = 100.0, 0.4, 0.2
DIFFERENCES = [
    "advection back-trace: ours RK2 (midpoint), PhiFlow Euler (semi_lagrangian's default; it has no RK2, only RK4), "
    "so PhiFlow samples the velocity once less per point",
    "pressure solve, both from zero to ||r|| <= 1e-5 ||b||: ours FFT (box, direct) or CG preconditioned by the exact "
    "obstacle-free fast Poisson solve (wake); PhiFlow CG-adaptive, unpreconditioned (its 'auto' method for the "
    "wake; for the singular box 'auto' means scipy-direct, which fails its own float32 tolerance check); its "
    "'ilu' and 'cluster-ilu' preconditioners raise NotImplementedError on the torch backend (no sparse "
    "triangular solves in torch), so unpreconditioned CG is the best it offers there",
    "obstacle: ours closes the faces of cells whose centre is inside the cylinder; PhiFlow's Obstacle(Sphere) "
    "builds its own staggered mask and keeps the velocity inside (the divergence check masks our solid cells)",
    "PhiFlow stores no inflow face and no wall-normal faces (its boundary fixes them), ours stores them with "
    "their fixed values: the wake losses are close, not equal (ours has the inflow face, ny * 1 m²/s², more)",
    "backward: both torch autograd with one adjoint pressure solve (PhiFlow: math.gradient, same Solve settings)",
    "ours validate=False (no CFL/NaN host sync, as the zoo trains); PhiFlow eager and math.jit_compile are "
    "both timed and the speedups use its faster mode",
]
HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".venv-phiflow" / "bin" / "python"


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call (PhiFlow traces its operators on the first)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def setup(problem: str, n: int) -> dict:
    """Grid, step size and viscosity of one problem at size ``n``."""
    if problem == "box":
        h = 2 * math.pi / n
        return {"nx": n, "ny": n, "length_x": 2 * math.pi, "h": h, "dt": BOX_CFL * h, "nu": BOX_NU}
    h = WAKE["length_x"] / n
    nu = WAKE["inflow_speed"] * WAKE["diameter"] / WAKE_RE
    return {"nx": n, "ny": n // 2, "length_x": WAKE["length_x"], "h": h, "dt": WAKE_CFL * h, "nu": nu}


def initial_velocity(problem: str, x, y, cos, exp):
    """Analytic ``(u, v)`` at points ``x, y`` for either library (``cos``/``exp`` of its tensors)."""
    if problem == "box":  # u = dpsi/dy, v = -dpsi/dx of psi = sum a sin(k.x + phase); max speed <= 1
        u = v = 0.0
        for kx, ky, ph in MODES:
            a = cos(kx * x + ky * y + ph) / (len(MODES) * math.hypot(kx, ky))
            u, v = u + a * ky, v - a * kx
        return u, v
    cx, cy = WAKE["center"]
    d = WAKE["diameter"]
    return 0.0 * x + WAKE["inflow_speed"], KICK * exp(-((x - cx - d) ** 2 + (y - cy) ** 2) / d**2)


def ours_row(problem: str, n: int) -> dict:
    from hybridzoo.datamodules.wake_problem import wake_solver
    from hybridzoo.physics.navier_stokes import NavierStokes2D

    c = setup(problem, n)
    kw = {"advection": "semi-lagrangian", "diffusion": "explicit", "validate": False}  # validate: as the zoo trains
    if problem == "box":
        s = NavierStokes2D(n, n, c["length_x"], **kw)
    else:
        s = wake_solver(c["nx"], c["ny"], WAKE["length_x"], WAKE["center"], WAKE["diameter"], WAKE["inflow_speed"],
                        **kw)
    u = initial_velocity(problem, *s.coordinates("u"), torch.cos, torch.exp)[0][None]
    v = initial_velocity(problem, *s.coordinates("v"), torch.cos, torch.exp)[1][None]
    with torch.no_grad():
        if problem == "wake":
            u, v, _ = s.project(*s.apply_boundaries(u, v), 1.0)
        u, v, _ = s.step(u, v, c["dt"], c["nu"])
    iters, converged = [], []  # per pressure solve: CG iterations (0: a direct FFT solve), residual <= tol
    raw = s.pressure.solve_raw
    tol = s.pressure_tol if s.pressure_tol is not None else TOL

    def counted(*a, **k):
        r = raw(*a, **k)
        iters.append(r[1])
        converged.append(bool(r[2] <= tol))
        return r

    s.pressure.solve_raw = counted

    def forward():
        with torch.no_grad():
            return s.step(u, v, c["dt"], c["nu"])

    def forward_backward():
        u0, v0 = u.detach().requires_grad_(), v.detach().requires_grad_()
        u1, v1, _ = s.step(u0, v0, c["dt"], c["nu"])
        loss = (u1**2).sum() + (v1**2).sum()
        loss.backward()
        return loss.detach()

    row = {"grid": [c["nx"], c["ny"]], "forward_ms": timed(forward, REPEATS[n]),
           "forward_backward_ms": timed(forward_backward, REPEATS[n])}
    iters.clear()
    converged.clear()
    loss = forward_backward()
    u1, v1, _ = forward()
    fluid = (~s.solid).to(u1) if s.solid is not None else 1.0
    return {**row, "max_abs_divergence": float((s.divergence(u1, v1) * fluid).abs().max()),
            "pressure_iterations": {"forward": iters[0], "adjoint": iters[1]},
            "pressure_converged": converged[:2], "loss": float(loss)}


def phiflow_row(pf, problem: str, n: int) -> dict:
    c = setup(problem, n)
    obstacles, bc = (), pf.extrapolation.PERIODIC
    if problem == "wake":
        slip = pf.extrapolation.combine_by_direction(normal=0, tangential=pf.extrapolation.ZERO_GRADIENT)
        bc = {"x-": pf.vec(x=WAKE["inflow_speed"], y=0.0), "x+": pf.extrapolation.ZERO_GRADIENT, "y-": slip, "y+": slip}
        obstacles = pf.Obstacle(pf.Sphere(x=WAKE["center"][0], y=WAKE["center"][1], radius=WAKE["diameter"] / 2))

    def init(p):
        return pf.vec(**dict(zip("xy", initial_velocity(problem, p.vector["x"], p.vector["y"], pf.math.cos,
                                                        pf.math.exp))))

    v0 = pf.StaggeredGrid(init, bc, x=c["nx"], y=c["ny"], bounds=pf.Box(x=c["length_x"], y=c["ny"] * c["h"]))
    v0 = v0.with_values(pf.math.to_float(v0.values))  # python-float constants would otherwise give float64
    # Solve('auto') runs CG-adaptive for the wake but scipy-direct (float64 LU, fails the 1e-5 check in float32)
    # for the singular box; plain 'CG' stalls above 1e-5 in float32. A capped solve is reported, not raised.
    solve = pf.Solve("CG-adaptive", TOL, 0.0, max_iterations=MAX_ITER, suppress=(pf.NotConverged,))

    def step(v):
        v = pf.advect.semi_lagrangian(v, v, c["dt"])
        v = pf.diffuse.explicit(v, c["nu"], c["dt"])
        return pf.fluid.make_incompressible(v, obstacles, solve)[0]

    if problem == "wake":
        v0 = pf.fluid.make_incompressible(v0, obstacles, solve)[0]
    v = step(v0)
    modes = {"eager": step, "jit": pf.math.jit_compile(step)}
    grads = {m: pf.math.gradient(lambda v, f=f: pf.math.sum(f(v).values ** 2), "v", get_output=True)
             for m, f in modes.items()}
    row = {"grid": [c["nx"], c["ny"]]}
    for mode, f in modes.items():
        with torch.no_grad():
            row[f"forward_ms_{mode}"] = timed(lambda f=f: f(v), PEER_REPEATS[n])
        row[f"forward_backward_ms_{mode}"] = timed(lambda g=grads[mode]: g(v), PEER_REPEATS[n])
        div = pf.field.divergence(f(v)).values  # jit runs its own traced graph: check its output too
        if problem == "wake":  # PhiFlow leaves velocity inside obstacles; mask our solid cells (centre inside)
            pts = v.at_centers().points
            div = div * ((pts.vector["x"] - WAKE["center"][0]) ** 2 + (pts.vector["y"] - WAKE["center"][1]) ** 2
                         > (WAKE["diameter"] / 2) ** 2)
        row[f"max_abs_divergence_{mode}"] = float(pf.math.max(abs(div)))
    with pf.math.SolveTape(record_trajectories=False) as tape:
        loss, _ = grads["eager"](v)
    row.update(pressure_iterations=dict(zip(("forward", "adjoint"), (int(s.iterations.max) for s in tape.solves))),
               pressure_converged=[bool(s.converged.all) for s in tape.solves], loss=float(loss))
    return row


def peer() -> dict:
    """PhiFlow's numbers (run inside .venv-phiflow)."""
    import warnings

    import numpy as np
    import phi
    import phiml
    from phi.torch import flow as pf
    from phiml.backend._numpy_backend import NumPyBackend

    warnings.filterwarnings("ignore")  # the rank-deficiency and beta-sparse warnings repeat on every call
    # phiml 1.16 linearises sparse-matrix indices in int32, which overflows at > 2^31 entries (the 256² box):
    # tum-pbs/PhiML#15. Widen to int64 there as its fix (PR #16) does, so the run gets to the solve itself.
    ravel = NumPyBackend.ravel_multi_index

    def ravel64(self, multi_index, shape, mode="undefined"):
        if np.prod(shape, dtype=np.int64) > np.iinfo(np.int32).max:
            multi_index = np.asarray(multi_index, dtype=np.int64)
        return ravel(self, multi_index, shape, mode)

    NumPyBackend.ravel_multi_index = ravel64
    out = {"library": f"phiflow {phi.__version__} (phiml {phiml.__version__}), torch backend",
           "torch": torch.__version__, "repeats": PEER_REPEATS, "pressure_solve": "CG-adaptive, no preconditioner",
           "patch": "int64 sparse indices (tum-pbs/PhiML#15, as PR #16); without it the 256² box fails "
                    "building its pressure matrix (ValueError)"}
    for problem in PROBLEMS:
        out[problem] = {}
        for n in SIZES:
            print(f"phiflow {problem} {n}", file=sys.stderr, flush=True)
            try:
                out[problem][str(n)] = phiflow_row(pf, problem, n)
            except Exception as e:  # a size PhiFlow fails at is a result too
                out[problem][str(n)] = {"error": f"{type(e).__name__}: {e}"[:500]}
    return out


def solves_converged(row: dict, cap: int) -> dict[str, bool]:
    """``{"forward": bool, "adjoint": bool}``: whether each pressure solve of a result row met the tolerance."""
    if "pressure_converged" in row:
        return dict(zip(("forward", "adjoint"), map(bool, row["pressure_converged"])))
    # rows from before convergence was recorded (ours): CG stops short of its cap only at the tolerance
    return {k: it < cap for k, it in row["pressure_iterations"].items()}


def _span(values: list[float]) -> list[float] | None:
    return [min(values), max(values)] if values else None


def summarise(result: dict) -> dict:
    """The speed-up entries of ``result`` (a results dict, e.g. a loaded results JSON), from its rows alone.

    ``speedup_vs_phiflow_best_mode``: per problem and size where PhiFlow ran, both ratios and ``converged``,
    per ratio, whether every pressure solve it times met the tolerance on both sides; ``speedup_range_converged``:
    ``[min, max]`` of the converged ratios per problem and over all; ``unconverged_rows``: the rows with a
    ratio that is not, with both sides' iterations, convergence and caps. ``{}`` when PhiFlow did not run.
    """
    if "phiflow" not in result:
        return {}
    ours, theirs = result["hybridzoo"], result["phiflow"]
    speedups: dict = {}
    unconverged: dict = {}
    for p in PROBLEMS:
        speedups[p] = {}
        for n, row in ours[p].items():
            peer_row = theirs.get(p, {}).get(n)
            if peer_row is None or "error" in peer_row:
                continue
            ok_ours, ok_peer = solves_converged(row, OURS_MAX_ITER), solves_converged(peer_row, MAX_ITER)
            converged = {"forward_ms": ok_ours["forward"] and ok_peer["forward"],
                         "forward_backward_ms": all(ok_ours.values()) and all(ok_peer.values())}
            speedups[p][n] = {k: min(peer_row[f"{k}_eager"], peer_row[f"{k}_jit"]) / row[k] for k in SPEEDUP_KEYS}
            speedups[p][n]["converged"] = converged
            if not all(converged.values()):
                unconverged[f"{p} {n}"] = {
                    "not_comparable": [k for k, ok in converged.items() if not ok],
                    "hybridzoo": {"pressure_iterations": row["pressure_iterations"], "pressure_converged": ok_ours,
                                  "max_iterations": OURS_MAX_ITER},
                    "phiflow": {"pressure_iterations": peer_row["pressure_iterations"],
                                "pressure_converged": ok_peer, "max_iterations": MAX_ITER},
                }
    ranges = {p: {k: _span([r[k] for r in rows.values() if r["converged"][k]]) for k in SPEEDUP_KEYS}
              for p, rows in speedups.items()}
    ranges["all"] = {k: _span([r[k] for rows in speedups.values() for r in rows.values() if r["converged"][k]])
                     for k in SPEEDUP_KEYS}
    return {"speedup_vs_phiflow_best_mode": speedups, "speedup_range_converged": ranges,
            "unconverged_rows": unconverged}


def resummarise(path: Path) -> dict:
    """Recompute :func:`summarise`'s entries of the results file ``path`` in place; measured numbers are kept."""
    from hybridzoo.datamodules.cache import atomic_write_bytes  # not at the top: the PhiFlow venv runs this file

    result = json.loads(path.read_text())
    result.update(summarise(result))
    atomic_write_bytes(path, (json.dumps(result, indent=2) + "\n").encode())
    return result


def _print_summary(result: dict) -> None:
    ranges = result.get("speedup_range_converged", {}).get("all", {})
    for k, span in ranges.items():
        print(f"speed-up {k}, converged rows: " + (f"{span[0]:.1f}-{span[1]:.1f}x" if span else "none"))
    for name, row in result.get("unconverged_rows", {}).items():
        print(f"not converged, left out of the ranges: {name} ({', '.join(row['not_comparable'])}; PhiFlow "
              f"iterations {row['phiflow']['pressure_iterations']}, cap {row['phiflow']['max_iterations']})")


def main() -> int | None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", action="store_true", help="run the PhiFlow side and print JSON")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "navier_stokes.json",
                        help="output JSON (default: benchmarks/results/navier_stokes.json)")
    parser.add_argument("--resummarise", action="store_true",
                        help="only recompute the speed-up summary of the existing --out file (no timing)")
    parser.add_argument("--replace", action="store_true", help="overwrite --out even if it is no results file")
    args = parser.parse_args()
    if not args.peer:  # found now, not after minutes of timing
        check_out(parser.error, args.out, "phiflow", args.replace)
    if args.resummarise:
        if not args.out.is_file():
            parser.error(f"--resummarise: {args.out} does not exist")
        _print_summary(resummarise(args.out))
        return
    torch.set_num_threads(1)
    if args.peer:
        print(json.dumps(peer()))
        return
    if not PEER_PYTHON.exists():
        print(f"{PEER_PYTHON} missing: create it with `make bench-peers` (see the docstring of "
              "benchmarks/navier_stokes.py); nothing written", file=sys.stderr)
        return 1
    result = {"dtype": "float32", "batch": 1, "threads": 1, "device": "cpu", "pressure_rel_tol": TOL,
              "machine": f"{platform.machine()} {platform.platform()}, {os.cpu_count()} cores, shared: timings noisy",
              "load_average_1_5_15_min": os.getloadavg(),
              "problems": {
                  "box": f"periodic 2pi x 2pi, n x n cells, dt = {BOX_CFL} h, nu = {BOX_NU}, stream-function modes "
                         f"{MODES} (kx, ky, phase), max speed <= 1",
                  "wake": f"wake_solver channel {WAKE}, Re = {WAKE_RE}, slip walls, nx = n, ny = n/2, "
                          f"dt = {WAKE_CFL} h, uniform flow + transverse kick {KICK} m/s, projected"},
              "differences": DIFFERENCES,
              "hybridzoo": {"library": "hybridzoo NavierStokes2D", "torch": torch.__version__, "repeats": REPEATS,
                            **{p: {str(n): ours_row(p, n) for n in SIZES} for p in PROBLEMS}}}
    proc = subprocess.run([str(PEER_PYTHON), __file__, "--peer"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"the PhiFlow side failed (exit {proc.returncode}); nothing written:\n{proc.stderr[-2000:]}",
              file=sys.stderr)
        return 1
    result["phiflow"] = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(summarise(result))
    from hybridzoo.datamodules.cache import atomic_write_bytes  # not at the top: the PhiFlow venv runs this file

    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode())
    print(json.dumps(result, indent=2))
    _print_summary(result)


if __name__ == "__main__":
    sys.exit(main())
