"""Cylinder wake flows (Karman vortex streets) over a range of Reynolds numbers, split by Reynolds number.

Setup (SI units, unit density): a channel ``length_x x length_x * ny / nx`` with slip walls, a uniform
inflow ``inflow_speed`` on the left, an outflow on the right and a cylinder of diameter ``diameter``
at ``center``; ``Re = inflow_speed * diameter / nu``. For each Reynolds number the *reference* is our
solver at ``factor`` times the coarse resolution (``dt / factor``), started from the uniform flow with
a small seeded transverse kick, run for ``warmup`` seconds until the vortex street develops and then
recorded every coarse step ``dt`` for ``steps`` steps, restricted to the coarse staggered grid (each
coarse face velocity is the mean of the fine face velocities that tile it, which keeps the flux, and
so the divergence, of every coarse cell). The coarse grid's obstacle faces are then set to zero, as the
coarse solver's no-penetration condition does; the fine grid's rounder cylinder leaves some of them partly
open, so the stored states are not divergence-free in the fluid cells beside the cylinder (12 cells at the
zoo geometry, up to 0.72 1/s at Re 500 and an inflow of 1 m/s). A coarse step projects them.
The *source* is the coarse solver itself (run by the model).
The coarse solver at twice the resolution, started from the reference state at the first recorded
step and restricted the same way, is stored too (``u2x``, ``v2x``): the "2x" baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.cache import ArrayCache, check_cache_dir
from hybridzoo.datamodules.wake_problem import (
    check_wake_cfl,
    check_wake_geometry,
    kick_sign,
    min_reynolds,
    restrict_faces,
    wake_solver,
    wake_viscosity,
)
from hybridzoo.physics.navier_stokes import NavierStokes2D
from hybridzoo.physics.validation import (
    check_bool,
    check_nonnegative_integral,
    check_positive_int,
    check_positive_number,
    is_real_number,
)
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

GENERATOR_VERSION = "3"  # 3: the kick sign of a simulation depends on (seed, Re) only


class WakeWindows(Dataset):
    """Training windows: ``{"u": (n+1, ny, nx+1), "v": (n+1, ny+1, nx), "re": ()}`` of the reference."""

    def __init__(self, u: np.ndarray, v: np.ndarray, re: np.ndarray, window: int, stride: int = 1):
        self.u = torch.as_tensor(u, dtype=torch.float32)
        self.v = torch.as_tensor(v, dtype=torch.float32)
        self.re = torch.as_tensor(re, dtype=torch.float32)
        steps = self.u.shape[1]
        if window + 1 > steps:
            raise ValueError(f"window={window} needs {window + 1} recorded steps, only {steps} exist")
        self.index = [(s, t) for s in range(self.u.shape[0]) for t in range(0, steps - window, stride)]
        self.window = window

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t = self.index[i]
        sl = slice(t, t + self.window + 1)
        return {"u": self.u[s, sl], "v": self.v[s, sl], "re": self.re[s]}


class WakeRollouts(Dataset):
    """Whole recorded trajectories: reference ``u``, ``v`` ``(T, ...)``, the 2x baseline ``u2x``, ``v2x``, ``re``."""

    def __init__(self, arrays: dict[str, np.ndarray], sims: np.ndarray, length: int):
        self.a = {k: torch.as_tensor(arrays[k][sims][:, : length + 1], dtype=torch.float32)
                  for k in ("u", "v", "u2x", "v2x")}
        self.re = torch.as_tensor(arrays["re"][sims], dtype=torch.float32)

    def __len__(self) -> int:
        return self.re.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**{k: a[i] for k, a in self.a.items()}, "re": self.re[i]}


class WakeFlowDataModule(L.LightningDataModule):
    """Reference cylinder wakes on the coarse grid, for solver-in-the-loop training.

    Args:
        nx, ny: coarse (source) grid cells.
        length_x: channel length (m); the height is ``length_x * ny / nx``.
        center: cylinder centre ``(x, y)`` (m).
        diameter: cylinder diameter (m).
        inflow_speed: uniform inflow velocity (m/s).
        factor: reference resolution over the coarse one (4 in the paper's setup); even. At 2 the "2x"
            baseline is the reference itself (its error is 0): use 4 or more for a meaningful one.
        dt: coarse time step (s); the reference uses ``dt / factor``.
        warmup: simulated seconds before recording (the vortex street must be developed).
        steps: recorded coarse steps per Reynolds number (the trajectory has ``steps + 1`` states).
        re_train, re_val, re_test: Reynolds numbers of each split (disjoint: test Re unseen in training and
            validation), each at least :func:`min_reynolds` of the reference grid.
        window: training window length in steps (the largest look-ahead ``n`` the model may use).
        rollout_steps: length of validation/test rollouts (``<= steps``).
        kick: amplitude of the initial transverse velocity perturbation (m/s) that starts the shedding.
        seed: seed of that perturbation.
        batch_size: training windows per batch.
        cache_dir: cache root (default ``$HYBRIDZOO_DATA`` or ``~/.cache/hybridzoo``).
        progress: show a progress bar while simulating.
    """

    def __init__(
        self,
        nx: int = 32,
        ny: int = 16,
        length_x: float = 8.0,
        center: tuple[float, float] = (2.0, 2.0),
        diameter: float = 1.0,
        inflow_speed: float = 1.0,
        factor: int = 4,
        dt: float = 0.1,
        warmup: float = 40.0,
        steps: int = 120,
        re_train: tuple[float, ...] = (100.0, 150.0, 250.0, 400.0),
        re_val: tuple[float, ...] = (300.0,),
        re_test: tuple[float, ...] = (200.0, 500.0),
        window: int = 16,
        rollout_steps: int = 100,
        kick: float = 0.2,
        seed: int = 0,
        batch_size: int = 8,
        cache_dir: str | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        for k, val in (("factor", factor), ("steps", steps), ("window", window),
                       ("rollout_steps", rollout_steps), ("batch_size", batch_size)):
            check_positive_int(k, val)
        check_positive_number("dt", dt)
        check_wake_geometry(nx, ny, length_x, center, diameter, inflow_speed)
        check_wake_cfl(dt, inflow_speed, length_x, nx)
        check_positive_number("warmup", warmup, allow_zero=True)
        check_positive_number("kick", kick, allow_zero=True)
        seed = check_nonnegative_integral("seed", seed)
        splits = {"re_train": re_train, "re_val": re_val, "re_test": re_test}
        for k, vals in splits.items():
            if isinstance(vals, (str, bytes)) or not isinstance(vals, (list, tuple, np.ndarray)):
                raise TypeError(f"{k} must be a list of Reynolds numbers, got {type(vals).__name__} {vals!r}")
            if len(vals) == 0:
                raise ValueError(f"{k} must hold at least one Reynolds number")
            for r in vals:
                check_positive_number(k, r)
        for k, vals in splits.items():
            if len(set(vals)) != len(vals):
                raise ValueError(f"{k} holds a Reynolds number twice: {list(vals)}")
        if set(re_train) & (set(re_val) | set(re_test)):
            raise ValueError("re_val/re_test must not share Reynolds numbers with re_train (the split is by Re)")
        if set(re_val) & set(re_test):
            raise ValueError("re_val and re_test must not share Reynolds numbers (the test Re stay unseen)")
        if factor % 2:
            raise ValueError(f"factor must be even (the 2x baseline restricts the reference by factor/2), got {factor}")
        # The simulations step without checks: the reference grid's explicit diffusion (the strictest of the
        # reference and the 2x grid) is checked here, once, by the solver's own test
        fine = wake_solver(nx * factor, ny * factor, length_x, tuple(center), diameter, inflow_speed, validate=False)
        for k, vals in splits.items():
            try:
                fine.check_diffusion(dt / factor, wake_viscosity(vals, inflow_speed, diameter))
            except ValueError:  # its advice (implicit diffusion) is no option of this DataModule
                lowest = min_reynolds(nx * factor, length_x, dt / factor, inflow_speed, diameter)
                raise ValueError(f"{k} holds Re={min(vals):g}, below {lowest:.4g}: the lowest Reynolds number "
                                 f"whose explicit diffusion the reference grid ({nx * factor} cells along x, "
                                 f"dt/factor) is stable for; raise it, or lower dt or factor") from None
        if window >= steps:
            raise ValueError(f"window={window} must be smaller than steps={steps}")
        if rollout_steps > steps:
            raise ValueError(f"rollout_steps={rollout_steps} exceeds the recorded steps={steps}")
        self.save_hyperparameters()
        self.cache_dir = check_cache_dir("cache_dir", cache_dir)
        self.progress = check_bool("progress", progress)
        self._arrays: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ configuration
    def data_config(self) -> dict[str, Any]:
        """The settings the generated arrays depend on."""
        keys = ("nx", "ny", "length_x", "center", "diameter", "inflow_speed", "factor", "dt", "warmup",
                "steps", "re_train", "re_val", "re_test", "kick", "seed")
        return {k: _plain_config(self.hparams[k]) for k in keys}

    @property
    def cache(self) -> ArrayCache:
        """The on-disk cache entry for this configuration."""
        return ArrayCache("wake-flow", self.data_config(), GENERATOR_VERSION, root=self.cache_dir)

    @property
    def reynolds(self) -> np.ndarray:
        """All Reynolds numbers, in storage order: train, then val, then test."""
        h = self.hparams
        return np.array([*h.re_train, *h.re_val, *h.re_test], dtype=np.float64)

    def solver(self, factor: int = 1, **kwargs: Any) -> NavierStokes2D:
        """The wake solver at ``factor`` times the coarse resolution."""
        h = self.hparams
        return wake_solver(h.nx * factor, h.ny * factor, h.length_x, tuple(h.center), h.diameter,
                           h.inflow_speed, **kwargs)

    def viscosity(self, re: torch.Tensor | np.ndarray | float) -> torch.Tensor:
        """Kinematic viscosity (m²/s) for Reynolds numbers ``re``."""
        return wake_viscosity(re, self.hparams.inflow_speed, self.hparams.diameter)

    # ------------------------------------------------------------------ generation
    def _initial_state(self, s: NavierStokes2D, re: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(re)
        u = torch.full((n, *s.u_shape), float(self.hparams.inflow_speed), dtype=torch.float64)
        x, y = s.coordinates("v", dtype=torch.float64)
        # a transverse bump behind the cylinder, random sign per simulation, breaks the symmetry
        cx, cy = self.hparams.center
        bump = torch.exp(-((x - cx - self.hparams.diameter) ** 2 + (y - cy) ** 2) / self.hparams.diameter**2)
        sign = torch.tensor([kick_sign(self.hparams.seed, r) for r in re], dtype=torch.float64)[:, None, None]
        v = self.hparams.kick * sign * bump
        u, v = s.apply_boundaries(u, v)
        return s.project(u, v, 1.0)[:2]

    def generate(self) -> dict[str, np.ndarray]:
        """Simulate every Reynolds number (batched): reference and 2x trajectories on the coarse grid."""
        h = self.hparams
        re = self.reynolds
        nu = self.viscosity(re)
        fine = self.solver(h.factor, validate=False)  # unchecked steps: __init__ checked every Re's diffusion
        fdt = h.dt / h.factor
        warmup = int(round(h.warmup / fdt))
        u, v = self._initial_state(fine, re)
        self._check_cfl(fine, u, v, fdt)
        p = None
        bar = tqdm(total=warmup + h.steps * (h.factor + 2), desc=f"wake flows ({len(re)} Re)", unit="step",
                   disable=not self.progress)
        with torch.no_grad(), bar:
            for _ in range(warmup):
                u, v, p = fine.step(u, v, fdt, nu, p)
                self._check_cfl(fine, u, v, fdt)
                bar.update()
            u2x, v2x = self._two_x(u, v, nu, bar)
            us, vs = [], []
            for k in range(h.steps + 1):
                if k:
                    for _ in range(h.factor):
                        u, v, p = fine.step(u, v, fdt, nu, p)
                        self._check_cfl(fine, u, v, fdt)
                        bar.update()
                uc, vc = restrict_faces(u, v, h.factor)
                us.append(uc)
                vs.append(vc)
            ref_u, ref_v = torch.stack(us, 1), torch.stack(vs, 1)
        coarse = self.solver(1, validate=False)
        n, t = len(re), h.steps + 1

        def on_coarse_grid(uu: torch.Tensor, vv: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            # the finer cylinders cover other faces than the coarse one: impose the coarse solid faces
            uu, vv = coarse.apply_boundaries(uu.flatten(0, 1), vv.flatten(0, 1))
            return (uu.reshape(n, t, *coarse.u_shape).float().numpy(),
                    vv.reshape(n, t, *coarse.v_shape).float().numpy())

        ref_u, ref_v = on_coarse_grid(ref_u, ref_v)
        u2x, v2x = on_coarse_grid(u2x, v2x)
        return {
            "re": re,
            "u": ref_u,
            "v": ref_v,
            "u2x": u2x,
            "v2x": v2x,
            "split": np.array([0] * len(h.re_train) + [1] * len(h.re_val) + [2] * len(h.re_test)),
        }

    def _check_cfl(self, s: NavierStokes2D, u: torch.Tensor, v: torch.Tensor, step_dt: float) -> None:
        """Refuse to go on (and cache garbage) once the state breaks the solver's CFL limit at ``step_dt``."""
        s.check_cfl(u, v, step_dt, reported_dt=self.hparams.dt, context=" of the wake simulation")

    def _two_x(self, u: torch.Tensor, v: torch.Tensor, nu: torch.Tensor,
               bar: tqdm) -> tuple[torch.Tensor, torch.Tensor]:
        """The solver at 2x resolution from the reference state ``u, v`` restricted to it, restricted to coarse."""
        h = self.hparams
        s2 = self.solver(2, validate=False)
        u, v = s2.apply_boundaries(*restrict_faces(u, v, h.factor // 2))
        u, v, p = s2.project(u, v, 1.0)
        us, vs = [], []
        for k in range(h.steps + 1):
            if k:
                for _ in range(2):
                    u, v, p = s2.step(u, v, h.dt / 2, nu, p)
                    self._check_cfl(s2, u, v, h.dt / 2)
                    bar.update()
            uc, vc = restrict_faces(u, v, 2)
            us.append(uc)
            vs.append(vc)
        return torch.stack(us, 1), torch.stack(vs, 1)

    def build(self, force: bool = False) -> Path:
        """(Re)build the simulations (``force``: even if a sound cache exists); returns the cache folder."""
        if force or self.cache.status() != "ok":
            self.cache.save(self.generate())
        return self.cache.dir

    def prepare_data(self) -> None:
        """Build (or validate) the cached data set; runs on one process only.

        A model attached through a Trainer that can check this DataModule (``check_datamodule``, as
        :class:`~hybridzoo.zoo.solver_in_the_loop.SolverInTheLoop` does: geometry, window) checks it first, so
        that a mismatch is reported before the simulations, not after them.
        """
        trainer = getattr(self, "trainer", None)
        model = getattr(trainer, "lightning_module", None)
        if callable(getattr(model, "check_datamodule", None)):
            model.check_datamodule(self, str(trainer.state.fn.value) if trainer.state.fn else "")
        self.cache.load_or_build(self.generate)

    def setup(self, stage: str | None = None) -> None:
        """Load the cached arrays (building them if another process has not)."""
        if self._arrays is None:
            self._arrays = self.cache.load_or_build(self.generate)

    # ------------------------------------------------------------------ loaders
    def _sims(self, split: int) -> np.ndarray:
        if self._arrays is None:
            self.setup()
        return np.nonzero(self._arrays["split"] == split)[0]

    def train_dataset(self) -> WakeWindows:
        """Windows of ``window + 1`` reference states from the training Reynolds numbers."""
        sims = self._sims(0)
        a = self._arrays
        return WakeWindows(a["u"][sims], a["v"][sims], a["re"][sims], self.hparams.window)

    def rollout_dataset(self, split: str) -> WakeRollouts:
        """Whole ``rollout_steps`` trajectories of ``"train"``, ``"val"`` or ``"test"`` Reynolds numbers."""
        code = {"train": 0, "val": 1, "test": 2}
        if split not in code:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        sims = self._sims(code[split])  # loads the arrays on first use: read them only after this
        return WakeRollouts(self._arrays, sims, self.hparams.rollout_steps)

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return DataLoader(self.train_dataset(), batch_size=self.hparams.batch_size, shuffle=True, drop_last=False)

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return DataLoader(self.rollout_dataset("val"), batch_size=len(self.hparams.re_val))

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return DataLoader(self.rollout_dataset("test"), batch_size=len(self.hparams.re_test))

    predict_dataloader = test_dataloader  # what trainer.predict and hybridzoo predict roll out


def _plain_config(value: Any) -> Any:
    """A config value as the cache key sees it: tuples and arrays become lists (``str(ndarray)`` rounds).

    The numbers of a list become floats, so that ``re_test=[200, 500]`` and ``[200.0, 500.0]`` share one entry.
    """
    if isinstance(value, (tuple, list)):
        return [float(v) if is_real_number(v) else v for v in value]
    if isinstance(value, np.ndarray):
        return _plain_config(value.tolist())
    return value
