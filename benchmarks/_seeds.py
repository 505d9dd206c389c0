"""Shared by the ``*_seeds.py`` benchmarks: train a zoo config once per seed, test it, summarise over seeds.

A results file accumulates runs: :func:`stored_runs` reads the runs of the same configuration back and
:func:`merge_runs` adds new ones, so a run with some ``--seeds`` never drops the other seeds' finished runs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hybridzoo.zoo.registry import create_datamodule, create_model, load_config


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
    return row, model


def summarise(runs: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of each key over the runs."""
    out = {}
    for k in keys:
        vals = [r[k] for r in runs]
        out[k] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return out


def stored_runs(out: Path, same: dict[str, Any], key: str = "runs") -> list[dict[str, Any]]:
    """The runs (the list ``key``) stored in the results file ``out`` if each entry of ``same`` equals the
    stored one, else ``[]``.

    ``same`` names what makes runs comparable (the config, an epochs override): runs of another
    configuration cannot enter the same mean ± std, so they are not returned (and the file is rewritten).
    """
    if not out.exists():
        return []
    previous = json.loads(out.read_text())
    if all(previous.get(k) == v for k, v in same.items()):
        return list(previous.get(key, []))
    print(f"{out} holds runs of another configuration ({', '.join(same)} differ): they are replaced",
          file=sys.stderr, flush=True)
    return []


def merge_runs(stored: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``stored`` plus ``new``, one run per seed, sorted by seed: a new run replaces the stored one of its seed."""
    by_seed = {r["seed"]: r for r in stored}
    by_seed.update({r["seed"]: r for r in new})
    return [by_seed[s] for s in sorted(by_seed)]
