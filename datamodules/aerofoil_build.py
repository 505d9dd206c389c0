"""Building the aerofoil data set: NACA and UIUC shapes, de-duplicated, and their XFOIL polars.

:func:`build_arrays` runs XFOIL (:func:`hybridzoo.datamodules.xfoil.run_polar`) for every (aerofoil,
Reynolds number) in a thread pool and writes each finished polar to disk at once, so an interrupted
build resumes where it stopped. :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule` calls it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from hybridzoo.datamodules.cache import atomic_write_bytes
from hybridzoo.physics.airfoil import check_airfoil, naca4, normalize, parse_naca4, read_dat, repanel

#: Bump whenever the generated arrays change. "2": polars keyed by the exact Reynolds number (was
#: ``{re:.0e}``, which merged e.g. 2e5 and 2.4e5), geometric duplicates dropped, missing XFOIL
#: points retried from a fresh boundary layer. Old cache entries are then left unused, never mixed in.
GENERATOR_VERSION = "2"

#: Shapes whose re-panelled contours are closer than this RMS point distance (chord units) are
#: treated as the same aerofoil (UIUC holds copies under several names); only the first is kept.
DUPLICATE_RMS = 1e-4

DEFAULT_NACA = tuple(
    [f"00{t:02d}" for t in (6, 9, 12, 15, 18, 21)]
    + [f"{m}{p}{t:02d}" for m in (1, 2, 4, 6) for p in (2, 4, 6) for t in (8, 12, 16)]
)

#: Angles of attack (degrees) of the polars: pre-stall for most aerofoils, 1° apart.
DEFAULT_ALPHAS = tuple(float(a) for a in range(-4, 11))
DEFAULT_REYNOLDS = (2e5, 1e6, 5e6, 1e7)


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


def prepare_shape(coords: torch.Tensor, n_per_side: int, strict: bool = False) -> torch.Tensor | None:
    """Normalise and re-panel a raw contour; ``None`` if it fails the checks or is implausible.

    Rejects contours that are open, clockwise, self-intersecting (checked before and after
    re-panelling), whose height (highest minus lowest point after normalisation; for a cambered section
    more than its thickness) is below 3 % or above 30 % of the chord, that reach beyond x/c in
    [-0.02, 1.02], or with a TE gap above 2 %. ``strict=True`` raises a ``ValueError`` that says which
    instead of returning ``None``.
    """
    try:
        c = normalize(coords.double())
        c = repanel(c, n_per_side)
        check_airfoil(c, max_te_gap=0.02)
        height = float(c[:, 1].max() - c[:, 1].min())
        if not 0.03 <= height <= 0.30:
            raise ValueError(f"its height is {height:.3g} chords, outside the data set's [0.03, 0.30]")
        x_lo, x_hi = float(c[:, 0].min()), float(c[:, 0].max())
        if x_lo < -0.02 or x_hi > 1.02:
            raise ValueError(f"normalised, it spans x/c from {x_lo:.3g} to {x_hi:.3g}, beyond [-0.02, 1.02]")
    except ValueError:
        if strict:
            raise
        return None
    return c


def _rms_distance(c: torch.Tensor, shapes: list[torch.Tensor]) -> torch.Tensor:
    """RMS point distance between contour ``c (K, 2)`` and each of ``shapes`` (same ``K``)."""
    if not shapes:
        return c.new_empty(0)
    return (torch.stack(shapes) - c).square().sum(-1).mean(-1).sqrt()


def _collect_shapes(
    n_uiuc: int,
    naca: Sequence[str],
    n_per_side: int,
    seed: int,
    duplicates: list[tuple[str, str]] | None = None,
) -> tuple[list[str], list[torch.Tensor]]:
    """NACA then randomly drawn UIUC shapes, re-panelled, without name or geometric duplicates.

    A shape within :data:`DUPLICATE_RMS` of one already kept is dropped (and does not count towards
    ``n_uiuc``), so that no aerofoil can sit in two splits under two names; ``(dropped, kept)`` name
    pairs are appended to ``duplicates`` when given.
    """
    names: list[str] = []
    shapes: list[torch.Tensor] = []

    def add(name: str, c: torch.Tensor) -> bool:
        dist = _rms_distance(c, shapes)
        if dist.numel() and float(dist.min()) < DUPLICATE_RMS:
            if duplicates is not None:
                duplicates.append((name, names[int(dist.argmin())]))
            return False
        names.append(name)
        shapes.append(c)
        return True

    for code in naca:
        m, p, t = parse_naca4(code)
        c = prepare_shape(naca4(m, p, t, n_per_side=200, closed_te=False, dtype=torch.float64), n_per_side)
        if c is not None and f"naca{code}" not in names:
            add(f"naca{code}", c)
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
            if c is not None and add(stem, c):
                taken += 1
    return names, shapes


def _polar_job(
    work: Path, key: str, coords: np.ndarray, re: float, alphas: Sequence[float], timeout: float
) -> str:
    from hybridzoo.datamodules.xfoil import XfoilError, XfoilMissing, XfoilTimeout, run_polar

    path = work / f"{key}.json"
    # Resumable: finished polars are never recomputed, except those cut short by the timeout, whose
    # missing points may only have lacked time (a loaded machine) and so are not yet XFOIL's verdict.
    if path.exists() and not json.loads(path.read_text()).get("timed_out", False):
        return key
    try:
        pol = run_polar(torch.from_numpy(coords), re, alphas, timeout=timeout)
        cl = [None if not np.isfinite(v) else float(v) for v in pol.cl]
        cd = [None if not np.isfinite(v) else float(v) for v in pol.cd]
        err, timed_out = "", pol.timed_out
    except XfoilMissing:
        raise  # a fact about this machine: recorded as a polar, it would stand for XFOIL's verdict for good
    except XfoilError as e:
        cl = cd = [None] * len(alphas)
        err, timed_out = str(e)[-300:], isinstance(e, XfoilTimeout)
    record = {"cl": cl, "cd": cd, "error": err, "timed_out": timed_out}
    atomic_write_bytes(path, json.dumps(record).encode())
    return key


def _re_key(re: float) -> str:
    """File-name key of a Reynolds number: exact to the 6 significant digits XFOIL is given."""
    return f"re{float(re):.6g}"


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
    build resumes where it stopped; polars that an XFOIL timeout cut short are run again then.
    """
    from hybridzoo.datamodules.xfoil import require_xfoil, xfoil_runs

    require_xfoil()  # before the shapes are collected, and before any polar is written
    re_keys = [_re_key(re) for re in reynolds]
    if len(set(re_keys)) != len(re_keys):
        raise ValueError(f"reynolds must be distinct (to 6 significant digits, as XFOIL gets them), got {reynolds!r}")
    duplicates: list[tuple[str, str]] = []
    names, shapes = _collect_shapes(n_uiuc, naca, n_per_side, seed, duplicates)
    if progress and duplicates:
        print(
            f"[aerofoil] dropped {len(duplicates)} geometric duplicate(s): "
            + ", ".join(f"{a} (= {b})" for a, b in duplicates),
            flush=True,
        )
    coords = np.stack([s.numpy() for s in shapes]).astype(np.float64)
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs = {f"{i:04d}_{names[i]}_{_re_key(re)}": (i, re) for i in range(len(names)) for re in reynolds}
    # Interrupted (Ctrl-C, SIGTERM, an error), the build cancels the polars not yet started and kills the
    # XFOIL processes still running: they run in sessions of their own, out of reach of the signal.
    with xfoil_runs():
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [
                pool.submit(_polar_job, work_dir, k, coords[i], re, alphas, timeout)
                for k, (i, re) in jobs.items()
            ]
            for done, fut in enumerate(as_completed(futures), 1):
                fut.result()
                if progress and done % 20 == 0:
                    print(f"[aerofoil] {done}/{len(futures)} polars", flush=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # all done, or xfoil_runs stops the running ones
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
