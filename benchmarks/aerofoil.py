"""Residual aerofoil vs its peers: accuracy against XFOIL and predictions per second.

Same test aerofoils (unseen in training), same angles and Reynolds numbers for all methods:
- panel: our batched Hess-Smith method (inviscid), from the re-panelled contour;
- hybrid (residual / PGML / NN-only): the trained model (shipped checkpoint, or ``--train`` epochs);
- NeuralFoil (xlarge): the peer a user would otherwise pick (pip ``neuralfoil``, numpy), used as fast as
  it goes: its CST fit once per distinct aerofoil, then one vectorised call over all rows;
- XFOIL: the reference itself (its MAE is 0 by definition; only its speed is measured).

Throughput: ``--batch`` (default 1024) predictions, i.e. (aerofoil, alpha, Re) rows, starting from the data
set's stored contours (what XFOIL labelled); the panel/hybrid timings include re-panelling them to the panel
method's resolution and the panel solves, the hybrid's the boundary layer and CST fit too;
``hybrid_full_preparation`` also normalises, re-panels and checks them first, as
:meth:`ResidualAerofoil.predict_cl` does for a contour of unknown origin.
Every method gets the same per-row inputs (contour, alpha, Re) and finds the distinct aerofoils among them
inside its timing.
The hybrid is timed in float32 (``hybrid``) and in float64 (``hybrid_float64``, the precision of the data
set's inputs and of :meth:`ResidualAerofoil.predict_cl`); ``mae_vs_xfoil.residual_timed_pipeline`` scores the
float32 pipeline on every test row, so that the timed configuration's accuracy is on record too.
Both run under ``torch.inference_mode()``, as torch code serving predictions would (NeuralFoil is numpy and
keeps no autograd state either), and so march the boundary layer with its compiled kernel
(:mod:`hybridzoo.physics.boundary_layer_native`) where one could be built; ``boundary_layer`` in the JSON says
which ran, and ``hybrid_torch_boundary_layer`` times the float32 hybrid with the torch march, as a machine
without a C++ compiler would run it; ``boundary_layer_kernel_vs_torch`` times the boundary layer alone both ways
and compares their features.

    python benchmarks/aerofoil.py [--train 60] [--batch 1024] [--xfoil-polars 4] [--repeats 5] [--runs 5] [--out FILE]
``--train N`` trains the zoo config (``configs/residual_aerofoil.yaml``: model, data and batch size) for N
epochs instead of loading the shipped checkpoint. Every method gets one warm-up call and the best of
``--repeats`` timed calls; ``--threads`` bounds torch's threads and numpy's BLAS pool alike (NeuralFoil is numpy).
The whole measurement runs ``--runs`` times, each in a fresh process; ``runs`` and ``ranges`` in the JSON hold them.
Writes benchmarks/results/aerofoil.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from hybridzoo.datamodules.aerofoil import AerofoilDataModule
from hybridzoo.datamodules.aerofoil_features import ALPHA, LOG_RE, aerofoil_inputs, panel_contours, stored_contours
from hybridzoo.datamodules.cache import atomic_write_bytes
from hybridzoo.physics import native
from hybridzoo.physics.aerofoil_boundary_layer import aerofoil_boundary_layer
from hybridzoo.physics.boundary_layer_native import KERNEL
from hybridzoo.physics.panel import hess_smith
from hybridzoo.zoo.neuralfoil_peer import neuralfoil_cl
from hybridzoo.zoo.registry import create_datamodule, create_model, load_config
from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own helpers
from _out import check_out  # noqa: E402

NAME = "residual-aerofoil"

OUT = Path(__file__).parent / "results" / "aerofoil.json"


def get_model(train_epochs: int | None) -> tuple[ResidualAerofoil, AerofoilDataModule, str]:
    """The shipped checkpoint and its DataModule, or (``train_epochs`` given, or no checkpoint) the zoo config trained.

    Training builds the model and the DataModule from the zoo config (loss, weight decay, batch size), as
    ``hybridzoo fit -c configs/residual_aerofoil.yaml`` would, so that the benchmark measures the model the
    zoo ships, not the constructor defaults; without ``train_epochs`` it runs the config's epochs.
    """
    if train_epochs is None:
        from hybridzoo.zoo.cards import CheckpointError
        from hybridzoo.zoo.hub import load_pretrained

        try:
            model = load_pretrained(NAME)
        except CheckpointError as err:  # no shipped checkpoint yet: train one
            train_epochs = int(load_config(NAME)["trainer"]["max_epochs"])
            print(f"no shipped checkpoint ({err}); training the zoo config for {train_epochs} epochs")
        else:
            dm = model.datamodule()  # the card's data config: the data and panel resolution it was trained on
            dm.setup()
            return model, dm, "shipped checkpoint"
    import lightning as L

    L.seed_everything(0)
    model, dm = create_model(NAME), create_datamodule(NAME)
    L.Trainer(
        max_epochs=train_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model, datamodule=dm)
    return model.eval(), dm, f"zoo config trained here for {train_epochs} epochs"


class Grouped(NamedTuple):
    """Rows grouped by aerofoil: ``coords (F, K, 2)``, ``alpha``/``re`` ``(F, W)`` padded, ``valid (F, W)``.

    ``order (R,)``: the row indices in the order that ``x[valid]`` holds them.
    """

    coords: torch.Tensor
    alpha: torch.Tensor
    re: torch.Tensor
    valid: torch.Tensor
    order: torch.Tensor


def grouped(coords: torch.Tensor, alpha: torch.Tensor, re: torch.Tensor) -> Grouped:
    """Rows ``coords (R, K, 2)``, ``alpha (R,)``, ``re (R,)`` grouped by aerofoil, angles padded to a common count.

    The distinct contours are found from the coordinates themselves, as NeuralFoil's side does, so that both
    start from the same per-row inputs. One batched call then solves every aerofoil once (one matrix per
    aerofoil, all its angles from the same solve); ``x[valid]`` gives back the rows in aerofoil order, ``order``
    says which.
    """
    uniq, inverse = torch.unique(coords.reshape(coords.shape[0], -1), dim=0, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    group = inverse[order]
    counts = torch.bincount(inverse, minlength=uniq.shape[0])
    slot = torch.arange(len(order)) - (counts.cumsum(0) - counts)[group]  # position within its aerofoil's group
    width = int(counts.max())
    pad_alpha = torch.zeros(len(counts), width, dtype=torch.float64)
    pad_re = torch.full((len(counts), width), 1e6, dtype=torch.float64)  # padding: a harmless Re
    pad_alpha[group, slot] = alpha[order].double()
    pad_re[group, slot] = re[order].double()
    valid = torch.arange(width)[None] < counts[:, None]
    return Grouped(uniq.reshape(-1, *coords.shape[1:]), pad_alpha, pad_re, valid, order)


def hybrid_rows(model: ResidualAerofoil, batch: Grouped, dtype: torch.dtype = torch.float32,
                full: bool = False) -> torch.Tensor:
    """The residual model's Cl of the rows of ``batch``: re-panelling, panel solve, boundary layer, shape fit, network.

    ``batch`` holds stored contours (what XFOIL saw); they are re-panelled to the panel method's resolution, as
    the data set's inputs were. ``full``: first normalised, re-panelled to the stored resolution and checked as
    :meth:`ResidualAerofoil.predict_cl` does for a contour of unknown origin.
    """
    n_per_side, n_panels = model.data_resolution()
    with torch.inference_mode():  # how torch code serves predictions: no autograd bookkeeping
        coords = stored_contours(batch.coords, n_per_side) if full else batch.coords
        coords = panel_contours(coords, n_panels).to(dtype)
        feats, cp = aerofoil_inputs(coords, batch.alpha.to(dtype), batch.re.to(dtype))
        return model(feats[batch.valid].float(), cp[batch.valid].float())["residual"]


@contextmanager
def native_setting(value: str) -> Iterator[None]:
    """``HYBRIDZOO_NATIVE=value`` (``"0"``: the torch march) for the duration, then as it was."""
    before = os.environ.get("HYBRIDZOO_NATIVE")
    os.environ["HYBRIDZOO_NATIVE"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYBRIDZOO_NATIVE")
        else:
            os.environ["HYBRIDZOO_NATIVE"] = before


def boundary_layer_check(batch: Grouped, repeats: int) -> dict[str, dict[str, float | bool]]:
    """The boundary layer of ``batch``'s panel solutions with the compiled march and with the torch march.

    Per dtype: both times (ms, one call over all rows, padding included), the largest relative difference of
    the network's boundary-layer features and whether every transition and separation station is the same.
    """
    out = {}
    for dtype in (torch.float32, torch.float64):
        with torch.inference_mode():
            sol = hess_smith(batch.coords.to(dtype), batch.alpha.to(dtype))
            re = batch.re.to(dtype)
            run = {}
            for name, setting in (("compiled", "1"), ("torch", "0")):
                with native_setting(setting):
                    run[name] = (timed(lambda sol=sol, re=re: aerofoil_boundary_layer(sol, re), repeats),
                                 aerofoil_boundary_layer(sol, re))
        (t_c, layer_c), (t_t, layer_t) = run["compiled"], run["torch"]
        fc, ft = layer_c.features(), layer_t.features()
        stations = ("x_transition", "x_laminar_separation", "x_turbulent_separation")
        out[str(dtype).removeprefix("torch.")] = {
            "compiled_ms": 1e3 * t_c,
            "torch_ms": 1e3 * t_t,
            "features_max_rel_diff": float(((fc - ft).abs() / ft.abs().clamp_min(1e-12)).max()),
            "same_transition_and_separation": all(
                torch.equal(getattr(layer_c, f), getattr(layer_t, f)) for f in stations),
        }
    return out


def error_breakdown(errors: dict[str, torch.Tensor], foil: torch.Tensor, names: list[str],
                    worst: int = 5) -> dict:
    """Where the absolute Cl errors ``errors[method] (R,)`` of the test rows of aerofoils ``foil (R,)`` lie.

    Returns each method's median error, the ``worst`` aerofoils by the residual model's MAE (name, rows and
    every method's MAE on them), and every method's MAE without the single worst aerofoil: a mean over
    ~70 unseen aerofoils can hang on one odd shape.
    """
    ids, inverse = torch.unique(foil, return_inverse=True)
    rows = torch.bincount(inverse, minlength=len(ids))
    per_foil = {m: torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, e.double()) / rows
                for m, e in errors.items()}
    order = per_foil["residual"].argsort(descending=True)[:worst]
    rest = inverse != order[0]
    return {
        "median": {m: float(e.median()) for m, e in errors.items()},
        "worst_aerofoils": [{"name": names[int(ids[k])], "rows": int(rows[k]),
                             **{m: float(v[k]) for m, v in per_foil.items()}} for k in order],
        "mae_without_worst_aerofoil": {m: float(e[rest].mean()) for m, e in errors.items()},
    }


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--train", type=int, default=None, help="train the zoo config this many epochs instead of loading weights"
    )
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument(
        "--xfoil-polars", type=int, default=4, help="XFOIL polars timed (one per aerofoil, at the data's angles)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads and numpy BLAS threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per method (best kept), after a warm-up")
    ap.add_argument("--runs", type=int, default=5,
                    help="fresh processes, each timing every method (ranges over them in `runs`); XFOIL in the first")
    ap.add_argument("--out", type=Path, default=OUT, help="results JSON")
    ap.add_argument("--replace", action="store_true", help="overwrite --out even if it is no results file")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one run, in this process
    args = ap.parse_args()
    if args.train is not None and args.train < 1:
        ap.error(f"--train must be >= 1 (epochs), got {args.train}")
    for name in ("batch", "threads", "repeats", "runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.xfoil_polars < 0:
        ap.error(f"--xfoil-polars must be >= 0, got {args.xfoil_polars}")
    check_out(ap.error, args.out, "mae_vs_xfoil", args.replace)  # found now, not after every run's measurements
    if not args.single:
        return several_runs(args)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    # numpy's BLAS pool otherwise takes every core: NeuralFoil would not run on the threads torch gets
    threadpool_limits(limits=args.threads)

    model, dm, origin = get_model(args.train)
    compiled = native.load(KERNEL) is not None
    x, cl_panel, cl, foil = dm.datasets["test"].tensors
    with torch.no_grad():
        pred = model(x, cl_panel)
    alpha, re = x[:, ALPHA].double(), 10 ** x[:, LOG_RE].double()
    # the contours XFOIL labelled (the data set's stored ones): every method starts from them
    stored = torch.from_numpy(dm.load()["coords"]).double()
    nf = neuralfoil_cl(stored[foil], alpha, re).float()
    errors = {m: (pred[m] - cl).abs() for m in ("panel", "nn", "residual", "pgml")}
    errors["neuralfoil"] = (nf - cl).abs()
    mae = {m: float(e.mean()) for m, e in errors.items()}
    breakdown = error_breakdown(errors, foil, dm.names)

    # ---- throughput on `batch` rows drawn from the test set (with repetition if needed)
    idx = torch.arange(args.batch) % len(cl)
    coords_rows = stored[foil[idx]]
    a_rows, re_rows = alpha[idx], re[idx]
    ufoils = torch.unique(foil[idx])
    # for the boundary-layer check: the panel method's contours
    batch = grouped(panel_contours(coords_rows, model.data_resolution()[1]), a_rows, re_rows)

    def run_panel():  # in float32, as the timed hybrid runs it
        rows = grouped(coords_rows, a_rows, re_rows)
        with torch.inference_mode():
            coords = panel_contours(rows.coords, model.data_resolution()[1]).float()
            return hess_smith(coords, rows.alpha.float()).cl[rows.valid]

    def run_hybrid(dtype: torch.dtype = torch.float32):
        # from the same per-row contours as NeuralFoil, finding the distinct aerofoils inside the timing as it does
        return hybrid_rows(model, grouped(coords_rows, a_rows, re_rows), dtype)

    def run_neuralfoil():
        neuralfoil_cl(coords_rows, a_rows, re_rows)

    def run_hybrid_torch_march():  # the boundary layer's torch version, as where no compiler is found
        with native_setting("0"):
            return hybrid_rows(model, grouped(coords_rows, a_rows, re_rows))

    times = {k: timed(fn, args.repeats) for k, fn in
             (("panel", run_panel), ("hybrid", run_hybrid), ("neuralfoil", run_neuralfoil),
              ("hybrid_float64", lambda: run_hybrid(torch.float64)),
              ("hybrid_full_preparation", lambda: hybrid_rows(model, grouped(coords_rows, a_rows, re_rows), full=True)),
              ("hybrid_torch_boundary_layer", run_hybrid_torch_march))}
    boundary_layer = boundary_layer_check(batch, args.repeats) if compiled else None
    # The timed pipeline runs in float32 from the contours; the MAEs above use the data set's inputs,
    # computed in float64. Score the timed pipeline itself on every test row too.
    test_rows = grouped(stored[foil], alpha, re)
    mae["residual_timed_pipeline"] = float((hybrid_rows(model, test_rows) - cl[test_rows.order]).abs().mean())

    xfoil_rate, xfoil_polars = None, 0
    try:
        from hybridzoo.datamodules.xfoil import run_polar, xfoil_available

        if xfoil_available() and args.xfoil_polars > 0:
            alphas = dm.alphas_deg  # the angles the data hold
            timed_foils = ufoils[: args.xfoil_polars]  # fewer than asked where the batch holds fewer aerofoils
            t = time.perf_counter()
            for f in timed_foils:
                # XFOIL's own sweep: the data build's retry of failed points can wait out a hung process
                # (NACA 0006 here: 12 s against 0.8 s), which times our driver, not XFOIL
                run_polar(stored[f], 1e6, alphas, retry=False)
            xfoil_rate = len(timed_foils) * len(alphas) / (time.perf_counter() - t)
            xfoil_polars = len(timed_foils)
    except Exception as err:  # XFOIL is optional here
        print(f"XFOIL timing skipped: {err}")

    rate = {k: args.batch / v for k, v in times.items()}
    if xfoil_rate is not None:
        rate["xfoil"] = xfoil_rate
    result = {
        "model": origin,
        "test_rows": len(cl),
        "test_foils": len(torch.unique(foil)),
        "mae_vs_xfoil": mae,
        "errors_by_aerofoil": breakdown,
        "ratios": {
            "panel_over_residual_mae": mae["panel"] / mae["residual"],
            "nn_over_residual_mae": mae["nn"] / mae["residual"],
            "residual_over_neuralfoil_mae": mae["residual"] / mae["neuralfoil"],
            "hybrid_over_neuralfoil_speed": rate["hybrid"] / rate["neuralfoil"],
            "hybrid_float64_over_neuralfoil_speed": rate["hybrid_float64"] / rate["neuralfoil"],
            "hybrid_full_preparation_over_neuralfoil_speed": rate["hybrid_full_preparation"] / rate["neuralfoil"],
            "hybrid_torch_boundary_layer_over_neuralfoil_speed": rate["hybrid_torch_boundary_layer"]
            / rate["neuralfoil"],
            **({"hybrid_over_xfoil_speed": rate["hybrid"] / rate["xfoil"]} if "xfoil" in rate else {}),
        },
        "predictions_per_s": rate,
        "boundary_layer": "compiled kernel (physics/boundary_layer_march.cpp)" if compiled else
                          "torch (no compiled kernel here)",
        "boundary_layer_kernel_vs_torch": boundary_layer,
        "batch": args.batch,
        "distinct_foils_in_batch": len(ufoils),
        "xfoil_polars_timed": xfoil_polars,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "note": f"timings are the best of {args.repeats} calls after a warm-up, for every method but XFOIL; torch "
                "and numpy's BLAS both limited to `threads`. Every method starts from the same per-row stored "
                "contours (what XFOIL labelled), angles and Re, and finds the distinct aerofoils inside the timing; "
                "panel and hybrid re-panel them to the panel method's resolution inside it, hybrid_full_preparation "
                "first normalises, re-panels and checks them as predict_cl does. XFOIL: "
                "`xfoil_polars_timed` polars (one per aerofoil, at Re 1e6, over the data's angles) timed once, "
                "without a warm-up: one XFOIL process per polar, no retry of failed points",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, json.dumps(result, indent=2).encode())
    print(json.dumps(result, indent=2))


def several_runs(args: argparse.Namespace) -> None:
    """Run the benchmark ``--runs`` times, each in a fresh process, and write the first run's results with
    every run's speeds and ratios (``runs``) and their ranges (``ranges``).

    Timings differ between processes more than within one (e.g. the float64 hybrid's allocations, see the
    README), so a range over processes is what a user would see.
    """
    import subprocess
    import tempfile

    keys = ("predictions_per_s", "ratios")
    runs = []
    with tempfile.TemporaryDirectory(prefix="aerofoil_bench_") as tmp:
        for k in range(args.runs):
            out = Path(tmp) / f"run{k}.json"
            cmd = [sys.executable, __file__, "--single", "--out", str(out), "--batch", str(args.batch),
                   "--threads", str(args.threads), "--repeats", str(args.repeats),
                   "--xfoil-polars", str(args.xfoil_polars if k == 0 else 0)]
            if args.train is not None:
                cmd += ["--train", str(args.train)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            runs.append(json.loads(out.read_text()))
            speed = runs[-1]["ratios"]["hybrid_over_neuralfoil_speed"]
            print(f"run {k + 1}/{args.runs}: hybrid/NeuralFoil {speed:.2f}x", flush=True)
    result = dict(runs[0])
    result["runs"] = [{key: r[key] for key in keys} for r in runs]
    result["ranges"] = {key: {} for key in keys}
    for key in keys:
        for name in runs[0][key]:
            values = [r[key][name] for r in runs if name in r[key]]
            result["ranges"][key][name] = [min(values), max(values)]
    result["note"] += f"; {args.runs} runs, each in a fresh process: `runs` and `ranges` (min, max); XFOIL in the first"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, json.dumps(result, indent=2).encode())
    print(json.dumps(result["ranges"], indent=2))


if __name__ == "__main__":
    main()
