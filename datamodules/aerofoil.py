"""Aerofoil lift data: UIUC and NACA 4-digit shapes, XFOIL polars, split by aerofoil.

The data set holds, per aerofoil, a chord-normalised contour re-panelled with cosine spacing and,
per (aerofoil, Reynolds number, angle of attack), XFOIL's viscous lift coefficient, or NaN where
XFOIL did not converge (such rows are kept, counted, and never used as targets).

A small built copy ships with the package (``datamodules/data/residual_aerofoil.npz``), so training
needs neither XFOIL nor AeroSandbox; :meth:`AerofoilDataModule.build` regenerates it (parallel,
resumable: each finished polar is written to disk at once, and a rerun skips it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hybridzoo.datamodules.aerofoil_build import (
    DEFAULT_ALPHAS,
    DEFAULT_NACA,
    DEFAULT_REYNOLDS,
    GENERATOR_VERSION,
    build_arrays,
)
from hybridzoo.datamodules.aerofoil_features import (  # noqa: F401 (MIN_PANELS_PER_SIDE: documented here before)
    MIN_PANELS_PER_SIDE,
    aerofoil_inputs,
    check_panels_per_side,
    panel_contours,
)
from hybridzoo.datamodules.aerofoil_split import near_duplicate_groups, split_foils
from hybridzoo.datamodules.cache import ArrayCache, atomic_write_bytes, sha256_file
from hybridzoo.physics.validation import check_bool, check_positive_int, is_real_number
from torch.utils.data import DataLoader, TensorDataset

#: Default panels per surface of the panel method (``n_panels_per_side``) and of the stored contours
#: (``n_per_side``, a generation setting).
N_PANELS_PER_SIDE, N_PER_SIDE = 60, 80


def _numbers(name: str, values: object, positive: bool = False) -> list[float]:
    """A non-empty collection of distinct finite real numbers (positive ones with ``positive``) as floats.

    Lists, tuples, sets, ranges and 1-D NumPy arrays or torch tensors; items may be 0-d arrays or tensors.
    """
    if isinstance(values, (torch.Tensor, np.ndarray)):
        if values.ndim != 1:
            raise TypeError(f"{name} must be a list of numbers (a 1-D array), got {values.ndim}-D {values!r}")
        values = values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of numbers, got {values!r}")
    values = [v.item() if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0 else v for v in values]
    if not values:
        raise ValueError(f"{name} must hold at least one number, got {values!r}")
    if not all(is_real_number(v) for v in values):
        raise TypeError(f"{name} must hold real numbers, got {values!r}")
    out = [float(v) for v in values]
    if not all(np.isfinite(out)) or (positive and min(out) <= 0):
        raise ValueError(f"{name} must hold finite{' positive' if positive else ''} numbers, got {out}")
    if len(set(out)) != len(out):  # each would be its own XFOIL point: the same rows twice
        raise ValueError(f"{name} must hold distinct numbers, got {out}")
    return out


def shipped_path() -> Path:
    """Path of the data set shipped inside the package."""
    return Path(__file__).resolve().parent / "data" / "residual_aerofoil.npz"


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a data set ``.npz`` (no pickles) and check its structure."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as err:  # not an .npz at all, a truncated one, pickled objects
        raise ValueError(f"path {str(path)!r} is not a readable .npz data set: {err}") from None
    need = {"names", "coords", "foil", "re", "alpha_deg", "cl"}
    if not need <= arrays.keys():
        raise ValueError(f"path {str(path)!r} lacks arrays {sorted(need - arrays.keys())}")
    coords, foil = arrays["coords"], arrays["foil"]
    problems = []
    if coords.ndim != 3 or coords.shape[-1] != 2:
        problems.append(f"coords has shape {coords.shape}, not (aerofoils, points, 2)")
    elif arrays["names"].shape != (len(coords),):
        problems.append(f"names has shape {arrays['names'].shape} for {len(coords)} contours")
    rows = {k: arrays[k].shape for k in ("foil", "re", "alpha_deg", "cl")}
    if len(set(rows.values())) != 1 or len(next(iter(rows.values()))) != 1:
        problems.append(f"the row arrays must be 1-D of one length, got shapes {rows}")
    # (only against contours that are themselves sound: otherwise there is no range to check foil against)
    elif not problems and (not np.issubdtype(foil.dtype, np.integer)
                           or (foil.size and not 0 <= foil.min() <= foil.max() < len(coords))):
        problems.append(f"foil must index the {len(coords)} contours, got {foil.dtype} values in "
                        f"[{foil.min() if foil.size else '-'}, {foil.max() if foil.size else '-'}]")
    for name, allow_nan in (("coords", False), ("re", False), ("alpha_deg", False), ("cl", True)):
        values = arrays[name]
        if not np.issubdtype(values.dtype, np.floating):
            problems.append(f"{name} must hold real floating-point numbers, got dtype {values.dtype}")
            continue
        bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
        if bad.any():  # NaN marks a missing XFOIL point in cl; infinity is never a lift
            kind = "infinite" if allow_nan else "NaN or infinite"
            problems.append(f"{name} holds {int(bad.sum())} {kind} values")
    if problems:
        raise ValueError(f"path {str(path)!r} is not a consistent aerofoil data set: {'; '.join(problems)}")
    return arrays


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
            :meth:`build` (XFOIL is run at each Re and alpha in degrees; ``workers`` threads). When
            the data are loaded from the shipped file or a path, they do not select rows: :meth:`setup`
            warns if ``alphas`` or ``reynolds`` differ from those the data holds, and :meth:`describe`
            reports the data's own.
    """

    def __init__(
        self,
        source: str = "shipped",
        n_train_foils: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        n_panels_per_side: int = N_PANELS_PER_SIDE,
        batch_size: int = 256,
        n_uiuc: int = 300,
        naca: Sequence[str] = DEFAULT_NACA,
        reynolds: Sequence[float] = DEFAULT_REYNOLDS,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_per_side: int = N_PER_SIDE,
        seed: int = 0,
        workers: int = 2,
    ) -> None:
        super().__init__()
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be 'shipped', 'cache' or a path, got {source!r}")
        for name, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not is_real_number(v):
                raise TypeError(f"{name} must be a real number in (0, 0.5), got {type(v).__name__} {v!r}")
            if not 0 < v < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {v!r}")
        reynolds, alphas = _numbers("reynolds", reynolds, positive=True), _numbers("alphas", alphas)
        if n_train_foils is not None and (
            isinstance(n_train_foils, bool) or not isinstance(n_train_foils, int) or n_train_foils < 1
        ):
            raise ValueError(f"n_train_foils must be a positive int or None, got {n_train_foils!r}")
        if isinstance(workers, bool) or not (isinstance(workers, int) and 1 <= workers <= 16):
            raise ValueError(f"workers must be an int in [1, 16], got {workers!r}")
        # Checked here, not first at setup (where a bad n_panels_per_side surfaced as repanel's n_per_side),
        # and never truncated: int(2.7) would quietly give batches of 2.
        for name, v in (("n_panels_per_side", n_panels_per_side), ("n_per_side", n_per_side)):
            check_panels_per_side(name, v)
        check_positive_int("batch_size", batch_size)
        for name, v in (("split_seed", split_seed), ("seed", seed), ("n_uiuc", n_uiuc)):
            check_positive_int(name, v, allow_zero=True)
        if isinstance(naca, str) or not isinstance(naca, Iterable) or any(not isinstance(c, str) for c in naca):
            raise TypeError(f"naca must be a list of 4-digit strings such as ['0012', '2412'] (quote them: YAML reads "
                            f"0012 as the octal number 10), got {naca!r}")
        self.save_hyperparameters()
        self.source = source
        self.batch_size = batch_size
        self.generation = {
            "n_uiuc": int(n_uiuc),
            "naca": list(naca),
            "reynolds": reynolds,  # floats, as _numbers returns them
            "alphas": alphas,
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

    def build(
        self, force: bool = False, out: str | os.PathLike[str] | None = None, overwrite: bool = False
    ) -> Path:
        """(Re)build the data set with XFOIL into the data cache (and copy to ``out``); returns its path.

        Needs ``xfoil``, ``xvfb-run`` and AeroSandbox. ``force=True`` discards a sound cache entry
        (finished polars in the work folder are still reused, except those cut short by the timeout;
        delete the folder to recompute them all). An
        existing ``out`` is replaced only with ``overwrite=True`` (checked before any work is done).

        Raises:
            FileExistsError: ``out`` exists and ``overwrite`` is False.
            IsADirectoryError: ``out`` is a folder.
            XfoilMissing: ``xfoil`` or ``xvfb-run`` is not installed (checked before any polar runs).
        """
        check_bool("force", force)  # "no" would discard a sound cache entry
        check_bool("overwrite", overwrite)  # "no" would replace the file at out
        if out is not None and Path(out).is_dir():
            raise IsADirectoryError(f"out {str(out)!r} is a folder; give the path of the .npz file to write")
        if out is not None and Path(out).exists() and not overwrite:
            raise FileExistsError(f"out {str(out)!r} already exists; pass overwrite=True to replace it")
        cache = self.cache()
        work = cache.dir / "polars"
        arrays = cache.load_or_build(
            lambda: build_arrays(**self.generation, workers=self.workers, work_dir=work), force=force
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
    def data_path(self) -> Path:
        """The file :meth:`load` reads for this ``source``: the shipped file, the cache entry's, or ``source``."""
        if self.source == "shipped":
            return shipped_path()
        if self.source == "cache":
            return self.cache().arrays_path
        return Path(self.source)

    def load(self) -> dict[str, np.ndarray]:
        """Return the raw arrays of the chosen source (:meth:`data_path`; a cache entry only if it is sound)."""
        if self.source == "cache":
            arrays = self.cache().load()
            if arrays is None:
                raise FileNotFoundError("no cached aerofoil data set: call build() or use source='shipped'")
            return arrays
        path = self.data_path()
        if self.source != "shipped" and not path.is_file():
            raise ValueError(
                f"source {self.source!r} is neither 'shipped', 'cache' nor an existing .npz file"
            )
        return load_arrays(path)

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays, compute shape features and panel lift, and split by aerofoil."""
        if self.datasets:
            return
        a = self.load()
        #: sha256 of the file the arrays were read from (the model card records it)
        self.loaded_sha256 = sha256_file(self.data_path())
        #: Panels per surface of the stored contours (what the data were built with).
        self.stored_n_per_side = (a["coords"].shape[1] - 1) // 2
        coords = panel_contours(torch.from_numpy(a["coords"]), self.hparams.n_panels_per_side)
        self.coords = coords.float()
        self.names = [str(n) for n in a["names"]]
        foil = torch.from_numpy(a["foil"]).long()
        alpha = torch.deg2rad(torch.from_numpy(a["alpha_deg"]))
        re = torch.from_numpy(a["re"])
        cl = torch.from_numpy(a["cl"]).float()
        self.n_missing = int(torch.isnan(cl).sum())
        self.n_rows = int(cl.numel())
        self.alphas_deg = [float(v) for v in np.unique(a["alpha_deg"])]
        self.reynolds = [float(v) for v in np.unique(a["re"])]
        self._check_generation_settings()
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
            len(self.names), self.hparams.val_fraction, self.hparams.test_fraction, self.hparams.split_seed,
            groups=near_duplicate_groups(a["coords"]),
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

    def _check_generation_settings(self) -> None:
        """Warn when ``alphas``/``reynolds`` were given but the loaded data hold other values."""
        if self.source == "cache":  # built from exactly these settings
            return
        differ = [
            f"{key}={sorted(set(self.generation[key]))} (data: {held})"
            for key, held in (("alphas", self.alphas_deg), ("reynolds", self.reynolds))
            if len(set(self.generation[key])) != len(held)
            or not np.allclose(sorted(set(self.generation[key])), held, rtol=1e-9, atol=1e-9)
        ]
        if differ:
            warnings.warn(
                f"AerofoilDataModule: source={self.source!r} loads a built data set, so the generation "
                f"settings {'; '.join(differ)} are ignored (they are used by build() only); use "
                "source='cache' to build and load data at other angles or Reynolds numbers",
                UserWarning,
                stacklevel=3,
            )

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

    predict_dataloader = test_dataloader  # what trainer.predict and hybridzoo predict run

    def describe(self) -> dict[str, Any]:
        """Return the model card's data summary: counts, and the angles and Re of the loaded data.

        Aerofoils per split, rows, missing (non-converged) points, the angle range, Reynolds numbers and
        contour resolution that the loaded data hold (not the generation settings), the panels per surface of
        the panel method, and the sha256 of the file they were loaded from.
        """
        if not self.datasets:
            self.setup()
        return {
            "n_foils": len(self.names),
            "n_rows": self.n_rows,
            "n_missing": self.n_missing,
            **{f"n_{k}_foils": len(v) for k, v in self.split.items()},
            **{f"n_{k}_rows": len(d) for k, d in self.datasets.items()},
            "alpha_range_deg": [min(self.alphas_deg), max(self.alphas_deg)],  # of the loaded data
            "reynolds": list(self.reynolds),
            "n_per_side": int(self.stored_n_per_side),  # of the stored contours, which the file fixes
            "n_panels_per_side": int(self.hparams.n_panels_per_side),
            "sha256": self.loaded_sha256,
        }
