"""Shared by the ``*_seeds.py`` benchmarks: train a zoo config once per seed, test it, summarise over seeds.

A results file accumulates runs: :func:`stored_runs` reads the runs of the same configuration back and
:func:`merge_runs` adds new ones, so a run with some ``--seeds`` never drops the other seeds' finished runs.
Each run records where it was made (:func:`provenance`: threads, versions, commit), since runs of one file may
come from different sessions; :func:`write_json` replaces a results file atomically.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hybridzoo.datamodules.cache import atomic_write_bytes
from hybridzoo.zoo.registry import create_datamodule, create_model, load_config

#: Seeds that L.seed_everything accepts.
SEED_RANGE = (0, 2**32 - 1)


def check_seeds(ap: argparse.ArgumentParser, seeds: list[int]) -> None:
    """``ap.error`` unless ``seeds`` are distinct and within :data:`SEED_RANGE` (checked before any training)."""
    if len(set(seeds)) != len(seeds):
        ap.error(f"--seeds repeats a seed: {seeds}")
    lo, hi = SEED_RANGE
    if any(not lo <= s <= hi for s in seeds):
        ap.error(f"--seeds must lie in [{lo}, {hi}], got {seeds}")


def provenance() -> dict[str, Any]:
    """Where a run was made: torch threads, versions and the git commit of this checkout (``None`` outside one;
    ``+dirty`` with uncommitted changes)."""
    from hybridzoo.zoo.cards import versions

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        # the results files are what a run writes: their own changes do not make the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                f":(top,exclude){here.name}/results"], cwd=here, capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"threads": torch.get_num_threads(), "commit": commit, "versions": versions()}


def write_json(out: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``out`` atomically: an interrupted write leaves the previous file whole."""
    atomic_write_bytes(out, (json.dumps(obj, indent=2) + "\n").encode())


def run_seed(name: str, seed: int, threads: int, keys: tuple[str, ...],
             **trainer_overrides: Any) -> tuple[dict[str, Any], L.LightningModule]:
    """Fit the zoo config ``name`` with ``seed_everything(seed)`` and test it; returns ``(row, model)``.

    ``row`` holds the seed, the training wall time (s), the epochs run and the test metrics ``keys``.
    """
    torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    model = create_model(name)
    dm = create_datamodule(name)
    trainer_cfg = dict(load_config(name).get("trainer") or {})
    trainer_cfg.update({k: v for k, v in trainer_overrides.items() if v is not None})
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, **trainer_cfg)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - start
    tested = trainer.test(model, datamodule=dm, verbose=False)[0]
    row: dict[str, Any] = {"seed": seed, "wall_time_s": round(wall, 1), "epochs": trainer.current_epoch}
    row.update({k: float(tested[k]) for k in keys})
    row["provenance"] = provenance()
    return row, model


def summarise(runs: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of each key over the runs."""
    out = {}
    for k in keys:
        vals = [r[k] for r in runs]
        out[k] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return out


def stored_runs(out: Path, same: dict[str, Any], key: str = "runs", replace: bool = False) -> list[dict[str, Any]]:
    """The runs (the list ``key``) stored in the results file ``out`` if each entry of ``same`` equals the
    stored one, else ``[]`` with ``replace=True`` and ``SystemExit`` without.

    ``same`` names what makes runs comparable (the config, the data, an epochs override): runs of another
    configuration cannot enter the same mean ± std. Discarding them, or another file that happens to sit at
    ``out``, takes ``replace`` (the scripts' ``--replace``), so that a quick trial run cannot wipe them.
    """
    if not out.exists():
        return []
    if out.is_dir():
        raise SystemExit(f"--out {out} is a folder; give the path of a .json file")
    try:
        previous = json.loads(out.read_text())
    except ValueError:
        previous = None
    differ = [k for k, v in same.items() if not isinstance(previous, dict) or previous.get(k) != v]
    if not differ:
        return list(previous.get(key, []))
    if not replace:
        what = "is not a results file of this benchmark" if not isinstance(previous, dict) or key not in previous \
            else f"holds runs of another configuration ({', '.join(differ)} differ)"
        raise SystemExit(f"{out} {what}: pass --replace to discard it, or --out another file")
    return []


def merge_runs(stored: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``stored`` plus ``new``, one run per seed, sorted by seed: a new run replaces the stored one of its seed."""
    by_seed = {r["seed"]: r for r in stored}
    by_seed.update({r["seed"]: r for r in new})
    return [by_seed[s] for s in sorted(by_seed)]
