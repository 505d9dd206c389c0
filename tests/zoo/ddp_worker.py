"""Run by test_ddp.py as a script: Lightning's DDP launcher re-executes this file once per rank."""

import json
import sys

import lightning as L
import torch
from hybridzoo.datamodules.lotka_volterra import LotkaVolterraDataModule
from hybridzoo.zoo import create_model


class Record(L.Callback):
    def on_train_end(self, trainer, pl_module):
        flat = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        gathered = trainer.strategy.all_gather(flat)
        if trainer.is_global_zero:
            out = {
                "world_size": trainer.world_size,
                "params_equal_across_ranks": bool(torch.allclose(gathered[0], gathered[1])),
                "val_traj_mse": float(trainer.callback_metrics["val/traj_mse"]),
                "first_loss": pl_module._first_loss,
                "last_loss": float(trainer.callback_metrics["train/loss"]),
            }
            with open(sys.argv[1], "w") as fh:
                json.dump(out, fh)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not hasattr(pl_module, "_first_loss"):
            pl_module._first_loss = float(trainer.callback_metrics["train/loss"])


if __name__ == "__main__":
    L.seed_everything(0)
    dm = LotkaVolterraDataModule(n_trajectories=6, n_val=2, n_test=1, t_train=2.0, t_extrap=3.0, noise=0.0,
                                 batch_size=2, cache_dir=sys.argv[2])
    model = create_model("ude-lotka-volterra", hidden=8, adam_epochs=15, lbfgs_epochs=0, window_start=1.0)
    trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=2, max_epochs=15, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        check_val_every_n_epoch=15, callbacks=[Record()])
    trainer.fit(model, datamodule=dm)
    # PyTorch asks scripts to destroy the process group before exiting: otherwise gloo's threads can still be
    # running at interpreter teardown, which aborts the process ("terminate called without an active exception")
    # now and then after a successful run
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
