"""Noisy Lotka-Volterra trajectories from several initial conditions, split by trajectory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.cache import ArrayCache, check_cache_dir
from hybridzoo.physics.lotka_volterra import LotkaVolterraParams, simulate_lotka_volterra
from hybridzoo.physics.validation import check_nonnegative_integral, check_positive_int, check_positive_number
from torch.utils.data import DataLoader, Dataset

# "2": the time grid ends at or before t_extrap (it could pass it by up to dt/2)
GENERATOR_VERSION = "2"


def grid_intervals(t_end: float, dt: float) -> int:
    """Number of whole steps ``dt`` in ``[0, t_end]``: the last grid time ``k*dt`` that is not after ``t_end``.

    A relative slack of 1e-9 keeps ``t_end`` itself on the grid where ``t_end/dt`` is a whole number in
    exact arithmetic but not in floating point (``0.3/0.1 = 2.9999999999999996``).
    """
    return math.floor(t_end / dt * (1 + 1e-9))


class TrajectoryDataset(Dataset):
    """Whole trajectories as items: ``{"t": (T,), "obs": (T, 2), "clean": (T, 2), "y0": (2,)}``."""

    def __init__(self, t: np.ndarray, obs: np.ndarray, clean: np.ndarray, y0: np.ndarray, n_train_points: int):
        self.t = torch.as_tensor(t, dtype=torch.float32)
        self.obs = torch.as_tensor(obs, dtype=torch.float32)
        self.clean = torch.as_tensor(clean, dtype=torch.float32)
        self.y0 = torch.as_tensor(y0, dtype=torch.float32)
        self.n_train_points = int(n_train_points)

    def __len__(self) -> int:
        return self.obs.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"t": self.t, "obs": self.obs[i], "clean": self.clean[i], "y0": self.y0[i],
                "n_train": torch.tensor(self.n_train_points)}


class LotkaVolterraDataModule(L.LightningDataModule):
    """Lotka-Volterra trajectories for the UDE.

    Trajectory 0 starts at ``(x0, y0)``; the others start at initial conditions drawn uniformly from
    ``[ic_low, ic_high]²``. Each is sampled at the times ``k*dt`` in ``[0, t_extrap]``; those in
    ``[0, t_train]`` are the training window, the rest the extrapolation window (neither window
    passes its end time where it is not a multiple of ``dt``). Observations
    carry Gaussian noise of standard deviation ``noise`` times the mean absolute population of each
    species over the trajectory. Trajectories are split (not samples): the last ``n_test`` are the
    test set, the ``n_val`` before them validation, the rest training.

    Args:
        alpha, beta, gamma, delta: rate constants of the true system (``alpha``, ``delta``: 1/time;
            ``beta``, ``gamma``: 1/(time·population)).
        x0, y0: the first trajectory's initial populations.
        n_trajectories: number of trajectories in all.
        ic_low, ic_high: range of the random initial populations.
        n_val, n_test: trajectories held out for validation and test.
        t_train: end of the training window (time units).
        t_extrap: end of the extrapolation window; it must hold at least one time after ``t_train``.
        dt: observation spacing (time units).
        noise: relative noise level (0 for clean data).
        seed: seed of initial conditions and noise (an int >= 0).
        batch_size: trajectories per batch (``None``: all training trajectories in one batch).
        cache_dir: cache root (default ``$HYBRIDZOO_DATA`` or ``~/.cache/hybridzoo``).
    """

    def __init__(
        self,
        alpha: float = 1.1,
        beta: float = 0.4,
        gamma: float = 0.1,
        delta: float = 0.4,
        x0: float = 10.0,
        y0: float = 10.0,
        n_trajectories: int = 12,
        ic_low: float = 2.0,
        ic_high: float = 10.0,
        n_val: int = 2,
        n_test: int = 2,
        t_train: float = 10.0,
        t_extrap: float = 20.0,
        dt: float = 0.1,
        noise: float = 0.01,
        seed: int = 0,
        batch_size: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.params = LotkaVolterraParams(alpha, beta, gamma, delta)
        for k, v in (("x0", x0), ("y0", y0), ("ic_low", ic_low), ("ic_high", ic_high), ("t_train", t_train),
                     ("t_extrap", t_extrap), ("dt", dt)):
            check_positive_number(k, v)
        check_positive_number("noise", noise, allow_zero=True)
        check_positive_int("n_trajectories", n_trajectories)
        if ic_high <= ic_low:
            raise ValueError(f"ic_high must exceed ic_low, got ic_low={ic_low}, ic_high={ic_high}")
        if t_extrap <= t_train:
            raise ValueError(f"t_extrap must exceed t_train, got t_train={t_train}, t_extrap={t_extrap}")
        if grid_intervals(t_train, dt) < 2:
            raise ValueError(f"dt={dt} leaves fewer than 3 points in the training window [0, {t_train}]")
        if grid_intervals(t_extrap, dt) <= grid_intervals(t_train, dt):
            raise ValueError(f"t_extrap={t_extrap} leaves no observation time (a multiple of dt={dt}) after "
                             f"t_train={t_train}: the extrapolation window would be empty")
        seed = check_nonnegative_integral("seed", seed)  # a plain int in the hyperparameters and the cache key
        for k, v in (("n_val", n_val), ("n_test", n_test)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be an int >= 1, got {v!r}")
        if n_trajectories - n_val - n_test < 1:
            raise ValueError(
                f"n_trajectories={n_trajectories} leaves no training trajectory after n_val={n_val}, n_test={n_test}"
            )
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
        self.save_hyperparameters()
        self.cache_dir = check_cache_dir("cache_dir", cache_dir)
        self._arrays: dict[str, np.ndarray] | None = None

    # the settings the arrays depend on (batch size and cache location do not change the data)
    def data_config(self) -> dict[str, Any]:
        """The settings the generated arrays depend on."""
        return {k: v for k, v in self.hparams.items() if k not in ("batch_size", "cache_dir")}

    @property
    def cache(self) -> ArrayCache:
        """The on-disk cache entry for this configuration."""
        return ArrayCache("lotka-volterra", self.data_config(), GENERATOR_VERSION, root=self.cache_dir)

    def generate(self) -> dict[str, np.ndarray]:
        """Simulate the data set (float64, RK4 with 20 substeps per observation interval)."""
        h = self.hparams
        rng = np.random.default_rng(h.seed)
        ics = rng.uniform(h.ic_low, h.ic_high, size=(h.n_trajectories, 2))
        ics[0] = (h.x0, h.y0)
        n = grid_intervals(h.t_extrap, h.dt) + 1
        t = torch.linspace(0.0, (n - 1) * h.dt, n, dtype=torch.float64)
        clean = simulate_lotka_volterra(torch.as_tensor(ics), t, self.params, substeps=20).numpy()
        scale = np.abs(clean).mean(axis=1, keepdims=True)
        obs = clean + h.noise * scale * rng.standard_normal(clean.shape)
        return {"t": t.numpy(), "y0": ics, "clean": clean, "obs": obs}

    def prepare_data(self) -> None:
        """Build (or validate) the cached data set; runs on one process only."""
        self.cache.load_or_build(self.generate)

    def build(self, force: bool = False) -> Path:
        """Generate and cache the data set (``force``: regenerate even if a sound cache exists)."""
        cache = self.cache
        if force or cache.load() is None:
            cache.save(self.generate())
        return cache.dir

    def setup(self, stage: str | None = None) -> None:
        """Load the cached arrays (building them if another process has not)."""
        if self._arrays is None:
            self._arrays = self.cache.load_or_build(self.generate)

    @property
    def n_train_points(self) -> int:
        """Number of time points in the training window ``[0, t_train]``, endpoints included."""
        return grid_intervals(self.hparams.t_train, self.hparams.dt) + 1

    def _split(self, which: str) -> TrajectoryDataset:
        if self._arrays is None:
            self.setup()
        a = self._arrays
        n, nv, nt = self.hparams.n_trajectories, self.hparams.n_val, self.hparams.n_test
        idx = {"train": slice(0, n - nv - nt), "val": slice(n - nv - nt, n - nt), "test": slice(n - nt, n)}[which]
        return TrajectoryDataset(a["t"], a["obs"][idx], a["clean"][idx], a["y0"][idx], self.n_train_points)

    def _loader(self, which: str, shuffle: bool) -> DataLoader:
        ds = self._split(which)
        return DataLoader(ds, batch_size=self.hparams.batch_size or len(ds), shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("train", shuffle=self.hparams.batch_size is not None)

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader("test", shuffle=False)

    def data_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-species ``(min, max)`` of the training observations (for sampling learned terms)."""
        ds = self._split("train")
        obs = ds.obs[:, : ds.n_train_points].reshape(-1, 2)
        return obs.min(0).values.numpy(), obs.max(0).values.numpy()
