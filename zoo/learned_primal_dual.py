"""Learned primal-dual CT (Adler & Öktem 2018), trained beside learned gradient descent, against FBP and TV.

One LightningModule trains both unrolled networks (independent weights, one summed MSE loss; Adam's
per-parameter scaling makes that two independent trainings) and evaluates, on the same batches, FBP and
TV-regularised PDHG, so the card's four methods are measured by the same code on the same phantoms.
"""

from __future__ import annotations

from typing import Any

import torch
from hybridzoo.physics.reconstruction import check_filter, fbp, tv_reconstruction
from hybridzoo.physics.tomography import ParallelBeamGeometry, RayTransform
from hybridzoo.physics.validation import check_positive_int, check_positive_number
from hybridzoo.zoo.base import Freeze, HybridModule
from hybridzoo.zoo.ct_networks import LearnedGradientDescent, LearnedPrimalDual, LGDPhysics, check_n_primal
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

#: Methods in card order: the hybrid first (logged without suffix), then the suffixes of the others.
METHODS = ("lpd", "lgd", "tv", "fbp")
#: Settings that pretrained weights must have been trained with: the same weights fit every value's shapes.
PRETRAINED_MUST_MATCH = ("lpd_init", "fbp_filter", "image_size", "num_angles", "num_detectors")


def normalise_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map both to the target's per-image ``[min, max] -> [0, 1]`` so PSNR/SSIM use ``data_range=1``."""
    lo = target.amin(dim=(-2, -1), keepdim=True)
    span = (target.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-8)
    return (pred - lo) / span, (target - lo) / span


class LearnedPrimalDualCT(HybridModule):
    """Sparse-view parallel-beam CT: learned primal-dual (the hybrid), learned gradient descent, TV, FBP.

    Input: sinograms ``(B, 1, num_angles, num_detectors)`` (line integrals, pixel size 1); output: images
    ``(B, 1, n, n)``. The geometry must match the DataModule's (checked at ``setup``).

    Args:
        image_size, num_angles, num_detectors: the acquisition geometry (see ``ParallelBeamGeometry``).
        n_iter, n_primal, n_dual, width: learned primal-dual (paper: 10, 5, 5, 32; ``n_primal >= 2``).
        lpd_init: learned primal-dual's starting image, ``"zero"`` (paper) or ``"fbp"`` (trains faster).
        lgd_iter, lgd_memory, lgd_width: learned gradient descent.
        lambda_init: initial TV weight of learned gradient descent (learnable, ``self.physics``).
        tv_weight, tv_iterations: the TV baseline (see ``tv_reconstruction``).
        fbp_filter: ``"ramp"`` or ``"hann"``, for the FBP baseline and LGD's starting point.
        cosine_schedule: cosine-anneal the learning rate to 0 over the run (as the paper).
        adam_beta2: Adam's second-moment decay (default 0.99 as in the paper).
        lr, weight_decay, pretrained, freeze: see :class:`HybridModule`.
    """

    zoo_name = "learned-primal-dual-ct"
    monitor = "val/psnr"
    # Shipped weights trained from the ramp FBP, loaded behind the default zero start, score 17.6 dB instead of 36.7
    pretrained_must_match = PRETRAINED_MUST_MATCH
    mode = "max"

    def __init__(
        self,
        image_size: int = 64,
        num_angles: int = 30,
        num_detectors: int | None = None,
        n_iter: int = 10,
        n_primal: int = 5,
        n_dual: int = 5,
        width: int = 32,
        lpd_init: str = "zero",
        lgd_iter: int = 10,
        lgd_memory: int = 5,
        lgd_width: int = 32,
        lambda_init: float = 1e-2,
        tv_weight: float = 3e-4,
        tv_iterations: int = 3000,
        fbp_filter: str = "hann",
        cosine_schedule: bool = True,
        adam_beta2: float = 0.99,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pretrained: str | None = None,
        freeze: Freeze = "none",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, adam_beta2=adam_beta2, pretrained=pretrained,
                         freeze=freeze)
        self.save_hyperparameters()
        for name in (
            "n_iter", "n_primal", "n_dual", "width", "lgd_iter", "lgd_memory", "lgd_width", "tv_iterations"
        ):
            check_positive_int(name, locals()[name])
        check_n_primal(n_primal)
        check_positive_number("lambda_init", lambda_init)
        check_positive_number("tv_weight", tv_weight, allow_zero=True)
        check_filter("fbp_filter", fbp_filter)
        if lpd_init not in ("zero", "fbp"):  # checked here too, so that the error names this argument
            raise ValueError(f"lpd_init must be 'zero' or 'fbp', got {lpd_init!r}")
        if check_positive_int("image_size", image_size) < 6:  # SSIM reflects its 11-pixel window at the border
            raise ValueError(f"image_size must be at least 6 (SSIM's 11-pixel window), got {image_size}")
        self.geometry = ParallelBeamGeometry(image_size, num_angles, num_detectors)
        self.op = RayTransform(self.geometry)
        self.physics = LGDPhysics(lambda_init)
        self.net = nn.ModuleDict({
            "lpd": LearnedPrimalDual(self.op, n_iter, n_primal, n_dual, width, lpd_init, fbp_filter),
            "lgd": LearnedGradientDescent(self.op, lgd_iter, lgd_memory, lgd_width, fbp_filter=fbp_filter),
        })
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({
                f"{kind}_{m}": (PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)) if kind == "psnr"
                                else StructuralSimilarityIndexMeasure(data_range=1.0))
                for kind in ("psnr", "ssim") for m in METHODS
            })
            for stage in ("val", "test")
        })

    # ------------------------------------------------------------------ reconstructions
    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Learned primal-dual reconstruction ``(B, 1, n, n)`` of sinograms ``(B, 1, A, D)``."""
        return self.net["lpd"](sinogram)

    def learned_gradient_descent(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Learned gradient descent reconstruction, same shapes as :meth:`forward`."""
        return self.net["lgd"](sinogram, self.physics.lam)

    @torch.no_grad()
    def baselines(self, sinogram: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the physics-only reconstructions ``{"fbp", "tv"}``, each ``(B, 1, n, n)``."""
        hp = self.hparams
        return {
            "fbp": fbp(self.op, sinogram, hp.fbp_filter),
            "tv": tv_reconstruction(self.op, sinogram, hp.tv_weight, hp.tv_iterations),
        }

    def reconstruct_all(self, sinogram: torch.Tensor) -> dict[str, torch.Tensor]:
        """All four reconstructions ``{"lpd", "lgd", "tv", "fbp"}`` of one batch."""
        out = {"lpd": self(sinogram), "lgd": self.learned_gradient_descent(sinogram)}
        out.update(self.baselines(sinogram))
        return out

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:  # noqa: D102
        super().setup(stage)
        dm = self.attached_datamodule
        geometry = getattr(dm, "geometry", None)
        if isinstance(geometry, ParallelBeamGeometry) and geometry != self.geometry:
            raise ValueError(f"the DataModule's geometry {geometry} differs from the model's {self.geometry};"
                             " set the same image_size, num_angles and num_detectors in both")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        y, x = batch["sinogram"], batch["phantom"]
        loss_lpd = torch.mean((self(y) - x) ** 2)
        loss_lgd = torch.mean((self.learned_gradient_descent(y) - x) ** 2)
        bs = y.shape[0]
        self.log("train/loss", loss_lpd.detach(), prog_bar=True, batch_size=bs)
        self.log("train/loss_lgd", loss_lgd.detach(), batch_size=bs)
        self.log("train/lambda_lgd", self.physics.lam.detach(), batch_size=1)
        return loss_lpd + loss_lgd

    def configure_optimizers(self) -> Any:  # noqa: D102
        opt = super().configure_optimizers()
        return self.with_cosine_schedule(opt) if self.hparams.cosine_schedule else opt

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """LPD, and LGD with its λ: two independent models trained in one run, clipped each on its own."""
        return [list(self.net["lpd"].parameters()), [*self.net["lgd"].parameters(), *self.physics.parameters()]]

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        y, x = batch["sinogram"], batch["phantom"]
        with torch.no_grad():
            recs = self.reconstruct_all(y)
        for m, rec in recs.items():
            p, t = normalise_pair(rec, x)
            self.metrics[stage][f"psnr_{m}"].update(p, t)
            self.metrics[stage][f"ssim_{m}"].update(p, t)
        self.log(f"{stage}/loss", torch.mean((recs["lpd"] - x) ** 2), batch_size=y.shape[0], sync_dist=True)
        return recs

    def _log_epoch(self, stage: str) -> None:
        for kind in ("psnr", "ssim"):
            values = {m: self.metrics[stage][f"{kind}_{m}"].compute() for m in METHODS}
            self.log_with_baselines(stage, kind, values["lpd"], {m: values[m] for m in METHODS[1:]},
                                    prog_bar=(kind == "psnr" and stage == "val"))
            for m in METHODS:
                self.metrics[stage][f"{kind}_{m}"].reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        recs = self._evaluate(batch, "val")
        if batch_idx == 0 and self.tensorboard is not None:
            self.log_figure("val/reconstructions", reconstruction_figure(batch, recs))

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._log_epoch("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._log_epoch("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        return self(batch["sinogram"])

    def release_metrics(self, trainer: Any, datamodule: Any) -> dict[str, float]:
        """Shepp-Logan PSNR/SSIM of all four methods (4 noise draws).

        The phantom is rasterised with the DataModule's ``supersample`` and measured with its noise model.
        """
        from hybridzoo.datamodules.ellipses import EllipsesDataset

        ds = getattr(datamodule, "dataset", None)
        if ds is None:
            return {}
        template = datamodule.dataset("test")
        sl = EllipsesDataset(
            self.op, 4, "test", template.seed + 1, phantom="shepp-logan", noise=template.noise,
            noise_level=template.noise_level, photons_per_ray=template.photons_per_ray,
            attenuation_scale=template.attenuation_scale, supersample=template.supersample,
        )
        items = [sl[i] for i in range(len(sl))]
        batch = {k: torch.stack([it[k] for it in items]).to(self.device) for k in ("sinogram", "phantom")}
        self.eval()
        with torch.no_grad():
            recs = self.reconstruct_all(batch["sinogram"])
        out = {}
        for m, rec in recs.items():
            p, t = normalise_pair(rec, batch["phantom"])
            suffix = "" if m == "lpd" else f"_{m}"
            psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)).to(self.device)
            ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(self.device)
            out[f"shepp_logan/psnr{suffix}"] = float(psnr(p, t))
            out[f"shepp_logan/ssim{suffix}"] = float(ssim(p, t))
        return out


def reconstruction_figure(
    batch: dict[str, torch.Tensor], recs: dict[str, torch.Tensor], rows: int = 2
) -> Any:
    """Grid per sample: phantom, sinogram, FBP, TV, LGD, LPD, |LPD - phantom|."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = batch["phantom"].detach().float().cpu()
    y = batch["sinogram"].detach().float().cpu()
    rows = min(rows, x.shape[0])
    cols = ["phantom", "sinogram", "fbp", "tv", "lgd", "lpd", "|lpd - phantom|"]
    fig, axes = plt.subplots(rows, len(cols), figsize=(2 * len(cols), 2 * rows), squeeze=False)
    for r in range(rows):
        lo, hi = float(x[r].min()), float(x[r].max())
        recon = [recs[m][r, 0].detach().float().cpu() for m in ("fbp", "tv", "lgd", "lpd")]
        panels = [x[r, 0], y[r, 0], *recon, (recon[-1] - x[r, 0]).abs()]
        for c, (name, img) in enumerate(zip(cols, panels)):
            ax = axes[r, c]
            kw = {} if name in ("sinogram", "|lpd - phantom|") else {"vmin": lo, "vmax": hi}
            ax.imshow(img.numpy(), cmap="gray", aspect="auto" if name == "sinogram" else "equal", **kw)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(name, fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["LearnedPrimalDualCT", "normalise_pair", "reconstruction_figure"]
