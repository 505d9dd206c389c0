"""Train a zoo model with its config, test it, and write its weights and model card."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import lightning as L
from hybridzoo.zoo.hub import save_pretrained
from hybridzoo.zoo.registry import create_datamodule, create_model, get_entry, load_config
from lightning.pytorch.loggers import TensorBoardLogger


def data_config(datamodule: L.LightningDataModule) -> dict[str, Any]:
    """The DataModule's init arguments that define the data, which ``model.datamodule()`` reuses elsewhere.

    Where the data lives and how many workers build or load it are this machine's business: left out.
    """
    hp = dict(getattr(datamodule, "hparams", {}) or {})
    return {k: v for k, v in hp.items() if k not in ("cache_dir", "num_workers", "workers", "data_dir", "progress")}


def release_command(name: str, out_dir: str | Path, seed: int, trainer_overrides: dict[str, Any] | None = None,
                    model_overrides: dict[str, Any] | None = None, data_overrides: dict[str, Any] | None = None) -> str:
    """The ``hybridzoo zoo release`` command line that repeats a :func:`release` call."""
    words = ["hybridzoo", "zoo", "release", name, "--out", str(out_dir), "--seed", str(seed)]
    for flag, overrides in (("--trainer", trainer_overrides), ("--model", model_overrides), ("--data", data_overrides)):
        if overrides:
            # JSON is YAML, which is how the command line reads a value back (strings stay bare)
            words += [flag, *(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items())]
    return shlex.join(words)


def release(
    name: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    overwrite: bool = False,
    trainer_overrides: dict[str, Any] | None = None,
    model_overrides: dict[str, Any] | None = None,
    data_overrides: dict[str, Any] | None = None,
    log_dir: str | Path = "lightning_logs",
    command: str | None = None,
) -> Path:
    """Train ``name`` from its packaged config, test it and save ``<out_dir>/<name>.{safetensors,json}``.

    The card records the test metrics (hybrid and baselines, from ``trainer.test``), the model's
    ``release_metrics`` (e.g. distillation), the data config, the command, seed, epochs, wall time,
    hardware and library versions. Existing files are never replaced unless ``overwrite=True``.

    Returns:
        Path of the written card.
    """
    get_entry(name)
    out = Path(out_dir)
    # all checked before training, which may run for an hour
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file, not a folder")
    if not overwrite:
        for suffix in (".safetensors", ".json"):
            if (out / f"{name}{suffix}").exists():
                raise FileExistsError(f"{out / (name + suffix)} exists; pass --overwrite to replace it")
    if "logger" in (trainer_overrides or {}):
        raise ValueError("trainer_overrides must not set 'logger': the release logs to TensorBoard under log_dir")
    config = load_config(name)
    trainer_kwargs: dict[str, Any] = {"accelerator": "auto", "devices": 1}
    trainer_kwargs.update(config.get("trainer") or {})
    trainer_kwargs.update(trainer_overrides or {})
    L.seed_everything(seed, workers=True)
    model = create_model(name, **(model_overrides or {}))
    dm = create_datamodule(name, **(data_overrides or {}))
    logger = TensorBoardLogger(str(log_dir), name=name)
    trainer = L.Trainer(logger=logger, **trainer_kwargs)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.test(model, datamodule=dm)[0].items()}
    metrics.update(model.release_metrics(trainer, dm))
    cmd = command or release_command(name, out_dir, seed, trainer_overrides, model_overrides, data_overrides)
    # what was loaded, beyond the init arguments in ``data``: a DataModule that can say (counts, a file's sha256)
    extra = {"data_summary": dm.describe()} if callable(getattr(dm, "describe", None)) else None
    return save_pretrained(
        model.cpu(), out, name=name, metrics=metrics, data=data_config(dm), train_command=cmd, seed=seed,
        epochs=trainer.current_epoch, wall_time_s=wall, overwrite=overwrite, extra=extra,
    )
