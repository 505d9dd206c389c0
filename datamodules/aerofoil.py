"""Aerofoil lift data: UIUC and NACA 4-digit shapes, XFOIL polars, split by aerofoil.

The data set holds, per aerofoil, a chord-normalised contour re-panelled with cosine spacing and,
per (aerofoil, Reynolds number, angle of attack), XFOIL's viscous lift coefficient, or NaN where
XFOIL did not converge (such rows are kept, counted, and never used as targets).

A small built copy ships with the package (``datamodules/data/residual_aerofoil.npz``), so training
needs neither XFOIL nor AeroSandbox; :meth:`AerofoilDataModule.build` regenerates it (parallel,
resumable: each finished polar is written to disk at once, and a rerun skips it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.aerofoil_features import aerofoil_inputs
from hybridzoo.datamodules.cache import ArrayCache, atomic_write_bytes
from hybridzoo.physics.airfoil import check_airfoil, naca4, normalize, parse_naca4, read_dat, repanel
from torch.utils.data import DataLoader, TensorDataset

GENERATOR_VERSION = "1"

DEFAULT_NACA = tuple(
    [f"00{t:02d}" for t in (6, 9, 12, 15, 18, 21)]
    + [f"{m}{p}{t:02d}" for m in (1, 2, 4, 6) for p in (2, 4, 6) for t in (8, 12, 16)]
)

#: Angles of attack (degrees) of the polars: pre-stall for most aerofoils, 1° apart.
DEFAULT_ALPHAS = tuple(float(a) for a in range(-4, 11))


def shipped_path() -> Path:
    """Path of the data set shipped inside the package."""
    return Path(__file__).resolve().parent / "data" / "residual_aerofoil.npz"


def uiuc_database() -> Path:
    """Folder of AeroSandbox's bundled UIUC ``.dat`` files (needs ``pip install aerosandbox``)."""
    try:
        import aerosandbox  # noqa: F401  (only its data files are used)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "building the aerofoil data set needs AeroSandbox: pip install aerosandbox"
        ) from err
    import aerosandbox

    return Path(aerosandbox.__file__).parent / "geometry" / "airfoil" / "airfoil_database"


def prepare_shape(coords: torch.Tensor, n_per_side: int) -> torch.Tensor | None:
    """Normalise and re-panel a raw contour; ``None`` if it fails the checks or is implausible.

    Rejects contours that are open, clockwise, self-intersecting (checked before and after
    re-panelling), thinner than 3 % or thicker than 30 % of the chord, or with a TE gap above 2 %.
    """
    try:
        c = normalize(coords.double())
        c = repanel(c, n_per_side)
        check_airfoil(c, max_te_gap=0.02)
    except ValueError:
        return None
    thick = c[:, 1].max() - c[:, 1].min()
    if not (0.03 <= float(thick) <= 0.30) or float(c[:, 0].min()) < -0.02 or float(c[:, 0].max()) > 1.02:
        return None
    return c


def _collect_shapes(
    n_uiuc: int, naca: Sequence[str], n_per_side: int, seed: int
) -> tuple[list[str], list[torch.Tensor]]:
    names, shapes = [], []
    for code in naca:
        m, p, t = parse_naca4(code)
        c = prepare_shape(naca4(m, p, t, n_per_side=200, closed_te=False, dtype=torch.float64), n_per_side)
        if c is not None:
            names.append(f"naca{code}")
            shapes.append(c)
    if n_uiuc > 0:
        files = sorted(uiuc_database().glob("*.dat"))
        order = np.random.default_rng(seed).permutation(len(files))
        taken = 0
        for i in order:
            if taken >= n_uiuc:
                break
            stem = files[i].stem.lower()
            if stem.startswith("naca") or stem in names:
                continue
            try:
                _, raw = read_dat(files[i])
            except ValueError:
                continue
            c = prepare_shape(raw, n_per_side)
            if c is not None:
                names.append(stem)
                shapes.append(c)
                taken += 1
    return names, shapes


def _polar_job(
    work: Path, key: str, coords: np.ndarray, re: float, alphas: Sequence[float], timeout: float
) -> str:
    from hybridzoo.datamodules.xfoil import XfoilError, run_polar

    path = work / f"{key}.json"
    if path.exists():  # resumable: finished polars are never recomputed
        return key
    try:
        pol = run_polar(torch.from_numpy(coords), re, alphas, timeout=timeout)
        cl = [None if not np.isfinite(v) else float(v) for v in pol.cl]
        cd = [None if not np.isfinite(v) else float(v) for v in pol.cd]
        err = ""
    except XfoilError as e:
        cl = cd = [None] * len(alphas)
        err = str(e)[-300:]
    atomic_write_bytes(path, json.dumps({"cl": cl, "cd": cd, "error": err}).encode())
    return key


def build_arrays(
    *,
    n_uiuc: int,
    naca: Sequence[str],
    reynolds: Sequence[float],
    alphas: Sequence[float],
    n_per_side: int,
    seed: int,
    workers: int,
    work_dir: Path,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Generate the data set: shapes, then one XFOIL polar per (aerofoil, Re) in ``workers`` threads.

    Finished polars are stored as JSON files in ``work_dir`` as they complete, so an interrupted
    build resumes where it stopped.
    """
    names, shapes = _collect_shapes(n_uiuc, naca, n_per_side, seed)
    coords = np.stack([s.numpy() for s in shapes]).astype(np.float64)
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs = {f"{i:04d}_{names[i]}_{re:.0e}": (i, re) for i in range(len(names)) for re in reynolds}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_polar_job, work_dir, k, coords[i], re, alphas, timeout)
            for k, (i, re) in jobs.items()
        ]
        for done, fut in enumerate(as_completed(futures), 1):
            fut.result()
            if progress and done % 20 == 0:
                print(f"[aerofoil] {done}/{len(futures)} polars", flush=True)
    foil, re_col, alpha_col, cl, cd = [], [], [], [], []
    for key, (i, re) in jobs.items():
        rec = json.loads((work_dir / f"{key}.json").read_text())
        for a, vl, vd in zip(alphas, rec["cl"], rec["cd"]):
            foil.append(i)
            re_col.append(re)
            alpha_col.append(a)
            cl.append(np.nan if vl is None else vl)
            cd.append(np.nan if vd is None else vd)
    return {
        "names": np.array(names),
        "coords": coords.astype(np.float32),
        "foil": np.array(foil, dtype=np.int64),
        "re": np.array(re_col, dtype=np.float64),
        "alpha_deg": np.array(alpha_col, dtype=np.float64),
        "cl": np.array(cl, dtype=np.float64),
        "cd": np.array(cd, dtype=np.float64),
    }


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a data set ``.npz`` (no pickles) and check its structure."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    need = {"names", "coords", "foil", "re", "alpha_deg", "cl"}
    if not need <= arrays.keys():
        raise ValueError(f"path {str(path)!r} lacks arrays {sorted(need - arrays.keys())}")
    return arrays


def split_foils(n_foils: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Random disjoint train/val/test aerofoil indices (split by aerofoil, never by row)."""
    perm = np.random.default_rng(seed).permutation(n_foils)
    n_test = max(1, round(test_fraction * n_foils))
    n_val = max(1, round(val_fraction * n_foils))
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


class AerofoilDataModule(L.LightningDataModule):
    """Rows ``(aerofoil, Re, alpha) → Cl_XFOIL`` with inputs for the panel method and the network.

    Each batch is a tuple ``(x, cl_panel, cl, foil)``:

    - ``x`` ``(B, N_FEATURES)``: CST weights of the shape (6 upper, 6 lower), TE thickness,
      alpha in radians, log10 Re, then the boundary-layer features of the panel solution (columns in
      :mod:`hybridzoo.datamodules.aerofoil_features`);
    - ``cl_panel`` ``(B,)``: inviscid Hess-Smith lift at that shape and angle (parameter-free, so it
      is computed once in :meth:`setup` for all rows instead of at every step);
    - ``cl`` ``(B,)``: XFOIL's lift coefficient (the target);
    - ``foil`` ``(B,)``: aerofoil index into :attr:`coords`.

    Args:
        source: ``"shipped"`` (the packaged ``.npz``), ``"cache"`` (build into the data cache if
            needed) or a path to an ``.npz`` made by :meth:`build`.
        n_train_foils: use only this many training aerofoils (data-efficiency studies); ``None``: all.
        val_fraction, test_fraction: fractions of aerofoils held out; split by aerofoil.
        split_seed: seed of the aerofoil split.
        n_panels_per_side: the panel method's resolution (shapes are re-panelled to it).
        batch_size: rows per batch.
        n_uiuc, naca, reynolds, alphas, n_per_side, seed, workers: generation settings used by
            :meth:`build` (XFOIL is run at each Re and alpha in degrees; ``workers`` threads).
    """

    def __init__(
        self,
        source: str = "shipped",
        n_train_foils: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        n_panels_per_side: int = 60,
        batch_size: int = 256,
        n_uiuc: int = 300,
        naca: Sequence[str] = DEFAULT_NACA,
        reynolds: Sequence[float] = (2e5, 1e6, 5e6, 1e7),
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_per_side: int = 80,
        seed: int = 0,
        workers: int = 2,
    ) -> None:
        super().__init__()
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be 'shipped', 'cache' or a path, got {source!r}")
        for name, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not (isinstance(v, (int, float)) and 0 < v < 0.5):
                raise ValueError(f"{name} must be in (0, 0.5), got {v!r}")
        if n_train_foils is not None and (
            isinstance(n_train_foils, bool) or not isinstance(n_train_foils, int) or n_train_foils < 1
        ):
            raise ValueError(f"n_train_foils must be a positive int or None, got {n_train_foils!r}")
        if not (isinstance(workers, int) and 1 <= workers <= 16):
            raise ValueError(f"workers must be an int in [1, 16], got {workers!r}")
        self.save_hyperparameters()
        self.source = source
        self.batch_size = int(batch_size)
        self.generation = {
            "n_uiuc": int(n_uiuc),
            "naca": [str(c) for c in naca],
            "reynolds": [float(r) for r in reynolds],
            "alphas": [float(a) for a in alphas],
            "n_per_side": int(n_per_side),
            "seed": int(seed),
        }
        self.workers = workers
        self.arrays: dict[str, np.ndarray] | None = None
        self.datasets: dict[str, TensorDataset] = {}

    # ------------------------------------------------------------------ building
    def cache(self) -> ArrayCache:
        """Return the cache entry of this generation config."""
        return ArrayCache("residual-aerofoil", self.generation, GENERATOR_VERSION)

    def build(self, force: bool = False, out: str | os.PathLike[str] | None = None) -> Path:
        """(Re)build the data set with XFOIL into the data cache (and copy to ``out``); returns its path.

        Needs ``xfoil``, ``xvfb-run`` and AeroSandbox. ``force=True`` discards a sound cache entry
        (finished polars in the work folder are still reused; delete it to recompute them).
        """
        cache = self.cache()
        if force and cache.manifest_path.exists():
            cache.manifest_path.unlink()
        work = cache.dir / "polars"
        arrays = cache.load_or_build(
            lambda: build_arrays(**self.generation, workers=self.workers, work_dir=work)
        )
        if out is not None:
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            atomic_write_bytes(Path(out), buf.getvalue())
            os.chmod(out, 0o644)  # a shipped file: readable by all, unlike the temporary file it was
            return Path(out)
        return cache.arrays_path

    def prepare_data(self) -> None:
        """Build the cached data set when ``source="cache"`` (rank 0 only)."""
        if self.source == "cache":
            self.build()

    # ------------------------------------------------------------------ loading
    def load(self) -> dict[str, np.ndarray]:
        """Return the raw arrays of the chosen source."""
        if self.source == "shipped":
            return load_arrays(shipped_path())
        if self.source == "cache":
            arrays = self.cache().load()
            if arrays is None:
                raise FileNotFoundError("no cached aerofoil data set: call build() or use source='shipped'")
            return arrays
        path = Path(self.source)
        if not path.is_file():
            raise ValueError(
                f"source {self.source!r} is neither 'shipped', 'cache' nor an existing .npz file"
            )
        return load_arrays(path)

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays, compute shape features and panel lift, and split by aerofoil."""
        if self.datasets:
            return
        a = self.load()
        coords = torch.from_numpy(a["coords"]).double()
        n_side = self.hparams.n_panels_per_side
        if (coords.shape[1] - 1) // 2 != n_side:
            coords = torch.stack([repanel(c, n_side) for c in coords])
        self.coords = coords.float()
        self.names = [str(n) for n in a["names"]]
        foil = torch.from_numpy(a["foil"]).long()
        alpha = torch.deg2rad(torch.from_numpy(a["alpha_deg"]))
        re = torch.from_numpy(a["re"])
        cl = torch.from_numpy(a["cl"]).float()
        self.n_missing = int(torch.isnan(cl).sum())
        self.n_rows = int(cl.numel())
        # The inputs on the (aerofoil, angle, Re) grid in one batched call, then picked per row.
        angles, res = torch.unique(alpha), torch.unique(re)
        grid = torch.meshgrid(angles, res, indexing="ij")  # (A, R) each
        grid_a, grid_re = (g.reshape(1, -1).expand(coords.shape[0], -1) for g in grid)
        x_grid, panel_grid = aerofoil_inputs(coords, grid_a, grid_re)  # (F, A * R, ...)
        shape = (coords.shape[0], len(angles), len(res))
        at = (foil, torch.searchsorted(angles, alpha), torch.searchsorted(res, re))
        x = x_grid.reshape(*shape, -1)[at].float()
        cl_panel = panel_grid.reshape(shape)[at].float()
        ok = ~torch.isnan(cl)
        train, val, test = split_foils(
            len(self.names), self.hparams.val_fraction, self.hparams.test_fraction, self.hparams.split_seed
        )
        if self.hparams.n_train_foils is not None:
            if self.hparams.n_train_foils > len(train):
                raise ValueError(
                    f"n_train_foils={self.hparams.n_train_foils} exceeds the {len(train)} training aerofoils"
                )
            train = train[: self.hparams.n_train_foils]
        self.split = {"train": train, "val": val, "test": test}
        for name, idx in self.split.items():
            rows = ok & torch.isin(foil, torch.from_numpy(idx))
            self.datasets[name] = TensorDataset(x[rows], cl_panel[rows], cl[rows], foil[rows])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        return DataLoader(self.datasets[name], batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training rows."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        """Return the validation rows (unseen aerofoils)."""
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        """Test rows (unseen aerofoils)."""
        return self._loader("test", False)

    def describe(self) -> dict[str, Any]:
        """Return counts for the model card: aerofoils per split, rows, missing (non-converged) points."""
        if not self.datasets:
            self.setup()
        return {
            "n_foils": len(self.names),
            "n_rows": self.n_rows,
            "n_missing": self.n_missing,
            **{f"n_{k}_foils": len(v) for k, v in self.split.items()},
            **{f"n_{k}_rows": len(d) for k, d in self.datasets.items()},
            "alpha_range_deg": [min(self.generation["alphas"]), max(self.generation["alphas"])],
            "reynolds": self.generation["reynolds"],
        }
