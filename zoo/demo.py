"""``make demo`` / ``hybridzoo demo``: train the UDE on CPU, distil it, print what it found."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from hybridzoo.zoo.distil import distil
from hybridzoo.zoo.registry import create_datamodule, create_model, load_config
from lightning.pytorch.loggers import TensorBoardLogger

# A shorter schedule than the shipped checkpoint's (130 epochs), so the demo stays under ~3 minutes on CPU.
DEMO_SCHEDULE = {"adam_epochs": 100, "lbfgs_epochs": 18, "window_epochs": 10, "lbfgs_max_iter": 20}


def run_demo(log_dir: str | Path = "lightning_logs", seed: int = 0) -> dict[str, float]:
    """Train the UDE Lotka-Volterra model on CPU (a short schedule), distil it and print a report.

    Args:
        log_dir: TensorBoard log folder.
        seed: global seed.

    Returns:
        The test metrics (hybrid, physics-only and distilled symbolic model).
    """
    name = "ude-lotka-volterra"
    print(f"hybridzoo demo: {name} — dx/dt = αx + NN₁(x,y), dy/dt = NN₂(x,y) − θ₃y, trained through RK4")
    L.seed_everything(seed, workers=True)
    model = create_model(name, **DEMO_SCHEDULE)
    dm = create_datamodule(name)
    trainer_cfg = dict(load_config(name).get("trainer") or {})
    logger = TensorBoardLogger(str(log_dir), name=f"demo-{name}")
    trainer_cfg.update(max_epochs=model.total_epochs, check_val_every_n_epoch=20)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False,
                        enable_model_summary=False, **trainer_cfg)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.test(model, datamodule=dm, verbose=False)[0].items()}
    result = distil(model, dm, fine_tune_epochs=10)
    metrics.update(result.metrics)
    print(f"\ntrained in {fit_s:.0f} s ({model.total_epochs} epochs: "
          f"{model.hparams.adam_epochs} Adam + {model.hparams.lbfgs_epochs} L-BFGS)")
    print(result.summary())
    p = dm.params
    print(f"\ndiscovered equations (truth: β={p.beta:.3g}, γ={p.gamma:.3g}, δ={p.delta:.3g}):")
    print(f"  dx/dt = {model.alpha:.3g}·x + ({result.terms['prey'].expression})")
    print(f"  dy/dt = {result.terms['predator'].expression} − {result.model.physics.theta3.item():.4g}·y")
    print("\nmean squared error on unseen trajectories (training window | extrapolation window):")
    rows = (("physics-only (NN off)", "_physics"), ("hybrid (UDE)", ""), ("distilled symbolic", "_symbolic"))
    for label, suffix in rows:
        print(f"  {label:24} {metrics[f'test/traj_mse{suffix}']:12.4g} | {metrics[f'test/extrap_mse{suffix}']:12.4g}")
    print(f"\nTensorBoard logs: {logger.log_dir}\n  view them with: tensorboard --logdir {log_dir}")
    return metrics


if __name__ == "__main__":
    run_demo()
