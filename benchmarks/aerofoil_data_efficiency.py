"""Data-efficiency curve of the residual aerofoil model: training aerofoils vs test Cl error, all modes.

For each number of training aerofoils the four modes (panel-only, NN-only, residual, PGML) are
trained in one run for the same number of optimiser steps and measured on the same unseen test
aerofoils (the split is fixed; smaller training sets are prefixes of the full one). Each size is
trained with every seed; the summary holds the mean and standard deviation over seeds.

    python benchmarks/aerofoil_data_efficiency.py [--sizes 10 25 50 100 0] [--steps 3000] [--seeds 0 1 2]
        [--out PATH] [--replace]
Writes benchmarks/results/aerofoil_data_efficiency.json (or ``--out``), atomically after every finished
(size, seed) run, so an interrupted run keeps the runs it finished. The file accumulates runs: those
stored with the same ``--steps``, model config, data config, data file (its sha256) and split are kept, and a new
run replaces only the stored run of its own (size, seed); a file of another configuration, or any other file
at ``--out``, is left alone unless ``--replace`` says to discard it. Each run records its threads, versions
and commit. All options are checked before the first training run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.aerofoil import AerofoilDataModule
from hybridzoo.datamodules.cache import sha256_file
from hybridzoo.zoo.registry import load_config
from hybridzoo.zoo.residual_aerofoil import ResidualAerofoil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _seeds  # noqa: E402

OUT = Path(__file__).parent / "results" / "aerofoil_data_efficiency.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[10, 25, 50, 100, 0], help="0 means all training aerofoils"
    )
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=OUT, help=f"output JSON (default: {OUT})")
    ap.add_argument("--replace", action="store_true",
                    help="discard what --out holds if its runs are of another configuration (or it is another file)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model_args = dict(load_config("residual-aerofoil")["model"]["init_args"])
    data_args = dict(load_config("residual-aerofoil")["data"]["init_args"])
    check_args(ap, args, data_args)
    # what makes runs comparable: the steps, the model, the data module's settings, the data file's bytes and the
    # split (the same settings and file split otherwise once the split's rules change)
    same = {"steps": args.steps, "model": model_args, "data": data_args, "data_sha256": data_digest(data_args),
            "split_sha256": split_digest(data_args)}
    rows = _seeds.stored_runs(args.out, same, key="rows", replace=args.replace)
    for size in args.sizes:
        for seed in args.seeds:
            dm = AerofoilDataModule(**{**data_args, "n_train_foils": size or None})
            dm.setup()
            L.seed_everything(seed)
            model = ResidualAerofoil(**model_args)
            t = time.perf_counter()
            trainer = L.Trainer(
                max_steps=args.steps,
                max_epochs=-1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(model, datamodule=dm)
            res = trainer.test(model, datamodule=dm, verbose=False)[0]
            row = {
                "n_train_foils": len(dm.split["train"]),
                "seed": seed,
                "wall_s": time.perf_counter() - t,
                **{k: float(v) for k, v in res.items()},
                "provenance": _seeds.provenance(),
            }
            rows = [r for r in rows if (r["n_train_foils"], r["seed"]) != (row["n_train_foils"], seed)] + [row]
            print(json.dumps(row), flush=True)
            summary = write(args.out, same, rows)
    for row in summary:
        print(json.dumps(row))
    print(f"written {args.out}")


def check_args(ap: argparse.ArgumentParser, args: argparse.Namespace, data_args: dict) -> None:
    """Reject bad options with ``ap.error`` before any training: a bad size found at setup would lose the
    sizes trained before it."""
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    _seeds.check_seeds(ap, args.seeds)
    if any(size < 0 for size in args.sizes):
        ap.error(f"--sizes must be >= 0 (0: all training aerofoils), got {args.sizes}")
    dm = AerofoilDataModule(**data_args)
    dm.setup()
    available = len(dm.split["train"])
    if any(size > available for size in args.sizes):
        ap.error(f"--sizes must be <= the {available} training aerofoils (or 0: all), got {args.sizes}")
    sizes = [size or available for size in args.sizes]
    if len(set(sizes)) != len(sizes):
        # the summary groups by size: a repeat would pool duplicate runs into one row
        ap.error(f"--sizes repeats a size (0 means {available}): {args.sizes}")


def split_digest(data_args: dict) -> str:
    """sha256 (16 hex digits) of the aerofoil indices of each split that ``data_args`` make."""
    dm = AerofoilDataModule(**data_args)
    dm.setup()
    split = {k: sorted(int(i) for i in v) for k, v in dm.split.items()}
    return hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()[:16]


def data_digest(data_args: dict) -> str:
    """sha256 of the data file the data module of ``data_args`` reads."""
    return sha256_file(AerofoilDataModule(**data_args).data_path())


def write(out: Path, same: dict, rows: list[dict]) -> list[dict]:
    """Write the runs so far and their summary to ``out`` (atomically); returns the summary."""
    summary = summarise(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (r["n_train_foils"], r["seed"]))
    _seeds.write_json(out, {**same, "summary": summary, "rows": rows})
    return summary


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every test metric, per training-set size."""
    out = []
    for n in sorted({r["n_train_foils"] for r in rows}):
        group = [r for r in rows if r["n_train_foils"] == n]
        entry: dict = {"n_train_foils": n, "seeds": len(group)}
        for key in (k for k in group[0] if k.startswith("test/")):
            values = np.array([r[key] for r in group])
            entry[key] = float(values.mean())
            entry[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        nn_over = np.array([r["test/mae_nn"] / r["test/mae"] for r in group])
        entry["nn_over_residual"] = float(nn_over.mean())
        entry["panel_over_residual"] = float(np.mean([r["test/mae_panel"] / r["test/mae"] for r in group]))
        out.append(entry)
    return out


if __name__ == "__main__":
    main()
