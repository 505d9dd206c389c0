"""Random-ellipse phantoms and their noisy parallel-beam sinograms, made on the fly from a seed per index.

Every sample is a pure function of ``(seed, split, index)``: no disk, the same data on every rank and every
worker (DDP-safe), and a held-out test set that never overlaps training (different split stream).
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.splits import check_num_workers, check_seed
from hybridzoo.physics.ct_noise import add_gaussian_noise, add_poisson_noise
from hybridzoo.physics.phantoms import random_ellipses, render_ellipses, shepp_logan
from hybridzoo.physics.tomography import ParallelBeamGeometry, RayTransform
from hybridzoo.physics.validation import check_positive_int, check_positive_number
from torch.utils.data import DataLoader, Dataset

Noise = Literal["gaussian", "poisson", "none"]
TestPhantom = Literal["ellipses", "shepp-logan"]
_SPLITS = {"train": 0, "val": 1, "test": 2}


def _check_sample_options(
    phantom: object, noise: object, noise_level: object, photons_per_ray: object,
    attenuation_scale: object, mean_ellipses: object, supersample: object,
) -> None:
    """Check the per-sample settings shared by :class:`EllipsesDataset` and :class:`EllipsesDataModule`."""
    if phantom not in ("ellipses", "shepp-logan"):
        raise ValueError(f"phantom must be 'ellipses' or 'shepp-logan', got {phantom!r}")
    if noise not in ("gaussian", "poisson", "none"):
        raise ValueError(f"noise must be 'gaussian', 'poisson' or 'none', got {noise!r}")
    check_positive_number("noise_level", noise_level, allow_zero=True)
    check_positive_number("photons_per_ray", photons_per_ray)
    check_positive_number("attenuation_scale", attenuation_scale)
    check_positive_number("mean_ellipses", mean_ellipses)
    check_positive_int("supersample", supersample)


def sample_seed(seed: int, split: str, index: int) -> int:
    """Return a well-mixed 63-bit seed for sample ``index`` of ``split`` (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(seed), _SPLITS[split], int(index)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class EllipsesDataset(Dataset):
    """Items ``{"phantom": (1, n, n), "sinogram": (1, num_angles, num_detectors), "index": ()}``.

    Args:
        op: the ray transform that measures each phantom.
        size: number of samples.
        split: ``"train"``, ``"val"`` or ``"test"`` (independent random streams).
        seed: global seed, a non-negative int.
        phantom: ``"ellipses"`` (random) or ``"shepp-logan"`` (the same phantom every index, new noise).
        noise: ``"gaussian"`` (``noise_level`` relative to the mean absolute sinogram), ``"poisson"``
            (Beer-Lambert, ``photons_per_ray``, ``attenuation_scale``) or ``"none"``.
        mean_ellipses: Poisson mean of the ellipse count.
        supersample: sub-pixel sampling of the phantom rasteriser.
    """

    def __init__(
        self,
        op: RayTransform,
        size: int,
        split: str = "train",
        seed: int = 0,
        phantom: TestPhantom = "ellipses",
        noise: Noise = "gaussian",
        noise_level: float = 0.05,
        photons_per_ray: float = 1e4,
        attenuation_scale: float = 0.01,
        mean_ellipses: float = 50.0,
        supersample: int = 1,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {tuple(_SPLITS)}, got {split!r}")
        _check_sample_options(phantom, noise, noise_level, photons_per_ray, attenuation_scale, mean_ellipses,
                              supersample)
        self.op = op
        self.size = check_positive_int("size", size)
        # no int(): it truncated 1.7 to 1 and turned True into 1, silently giving another seed's data. No upper
        # bound here (the data module has one): callers derive seeds such as seed + 1 from a module's seed
        seed = check_positive_int("seed", seed, allow_zero=True)
        self.split, self.seed, self.phantom, self.noise = split, seed, phantom, noise
        self.noise_level = check_positive_number("noise_level", noise_level, allow_zero=True)
        self.photons_per_ray = check_positive_number("photons_per_ray", photons_per_ray)
        self.attenuation_scale = check_positive_number("attenuation_scale", attenuation_scale)
        self.mean_ellipses = check_positive_number("mean_ellipses", mean_ellipses)
        self.supersample = check_positive_int("supersample", supersample)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a data set of {self.size}")
        gen = torch.Generator().manual_seed(sample_seed(self.seed, self.split, index))
        n = self.op.geometry.image_size
        if self.phantom == "shepp-logan":
            x = shepp_logan(n, self.supersample)
        else:
            x = render_ellipses(random_ellipses(gen, self.mean_ellipses), n, self.supersample)
        clean = self.op(x)
        if self.noise == "gaussian":
            y = add_gaussian_noise(clean, self.noise_level, gen)
        elif self.noise == "poisson":
            y = add_poisson_noise(clean, self.photons_per_ray, self.attenuation_scale, gen)
        else:
            y = clean
        return {"phantom": x[None], "sinogram": y[None], "index": torch.tensor(index)}


class EllipsesDataModule(L.LightningDataModule):
    """Sparse-view parallel-beam CT of random ellipse phantoms (Adler & Öktem 2018's ellipse data set).

    The paper's setup is ``image_size=128, num_angles=30, num_detectors=182``, 5 % additive Gaussian
    noise, random ellipses for training and Shepp-Logan for testing. Training samples are indices
    ``0..train_size-1`` of the train stream; ``val_size`` and ``test_size`` samples come from their own
    streams, so the held-out test set is fixed by ``seed`` alone.

    Args:
        image_size: pixels per side (pixel size 1 length unit).
        num_angles: projection angles over ``[0, pi)``.
        num_detectors: detector bins (``None``: just covering the image diagonal).
        noise, noise_level, photons_per_ray, attenuation_scale: the noise model (see
            :class:`EllipsesDataset`).
        mean_ellipses: Poisson mean of the number of ellipses per phantom.
        train_size, val_size, test_size: samples per split.
        test_phantom: ``"ellipses"`` (held-out random phantoms) or ``"shepp-logan"``.
        batch_size: training batch size (evaluation uses the same).
        seed: global seed, an int in ``[0, 2**32)``.
        num_workers: DataLoader workers.
        supersample: phantom rasteriser sub-sampling.
    """

    def __init__(
        self,
        image_size: int = 64,
        num_angles: int = 30,
        num_detectors: int | None = None,
        noise: Noise = "gaussian",
        noise_level: float = 0.05,
        photons_per_ray: float = 1e4,
        attenuation_scale: float = 0.01,
        mean_ellipses: float = 50.0,
        train_size: int = 2000,
        val_size: int = 8,
        test_size: int = 32,
        test_phantom: TestPhantom = "ellipses",
        batch_size: int = 8,
        seed: int = 0,
        num_workers: int = 0,
        supersample: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.geometry = ParallelBeamGeometry(image_size, num_angles, num_detectors)
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size),
                            ("batch_size", batch_size)):
            check_positive_int(name, value)
        check_num_workers(num_workers)
        check_seed("seed", seed)
        if test_phantom not in ("ellipses", "shepp-logan"):
            raise ValueError(f"test_phantom must be 'ellipses' or 'shepp-logan', got {test_phantom!r}")
        # here, not in dataset(): a bad setting should fail when it is written, not at the first loader
        _check_sample_options("ellipses", noise, noise_level, photons_per_ray, attenuation_scale, mean_ellipses,
                              supersample)
        self._op: RayTransform | None = None
        self._sets: dict[str, EllipsesDataset] = {}

    @property
    def op(self) -> RayTransform:
        """The ray transform of this data set's geometry (built on first use)."""
        if self._op is None:
            self._op = RayTransform(self.geometry)
        return self._op

    def dataset(self, split: str) -> EllipsesDataset:
        """Return the data set of ``split`` (``"train"``, ``"val"``, ``"test"``)."""
        if split not in self._sets:
            hp = self.hparams
            size = {"train": hp.train_size, "val": hp.val_size, "test": hp.test_size}[split]
            self._sets[split] = EllipsesDataset(
                self.op, size, split, hp.seed,
                phantom=hp.test_phantom if split == "test" else "ellipses",
                noise=hp.noise, noise_level=hp.noise_level, photons_per_ray=hp.photons_per_ray,
                attenuation_scale=hp.attenuation_scale, mean_ellipses=hp.mean_ellipses,
                supersample=hp.supersample,
            )
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        self.op  # noqa: B018  build the matrix once, before any worker forks

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(self.dataset(split), batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=workers, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Test batches, in order (what ``trainer.predict`` runs on, as for the other data modules)."""
        return self._loader("test", shuffle=False)
