"""Building the aerofoil data set: NACA and UIUC shapes, de-duplicated, and their XFOIL polars.

:func:`build_arrays` runs XFOIL (:func:`hybridzoo.datamodules.xfoil.run_polar`) for every (aerofoil,
Reynolds number) in a thread pool and writes each finished polar to disk at once, so an interrupted
build resumes where it stopped. :class:`~hybridzoo.datamodules.aerofoil.AerofoilDataModule` calls it.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from hybridzoo.datamodules.cache import atomic_write_bytes
from hybridzoo.datamodules.xfoil import XfoilError  # the exception only: run_polar & co. are looked up late
from hybridzoo.physics.airfoil import (
    check_airfoil,
    check_panels_per_side,
    naca4,
    normalize,
    parse_naca4,
    read_dat,
    repanel,
)

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
        return _prepare(coords[None], n_per_side)[0]
    except ValueError:
        if strict:
            raise
        return None


def prepare_shapes(coords: torch.Tensor, n_per_side: int, name: str = "coords") -> torch.Tensor:
    """:func:`prepare_shape` of a batch ``(B, K, 2)`` in one pass, with ``strict=True``; ``(B, 2 n + 1, 2)``.

    Raises:
        ValueError: naming the first contour ``{name}[i]`` that fails, and the check it fails.
    """
    try:
        return _prepare(coords, n_per_side)
    except ValueError:
        for i, c in enumerate(coords):  # which one, and why
            try:
                prepare_shape(c, n_per_side, strict=True)
            except ValueError as err:
                raise ValueError(f"{name}[{i}] is not an aerofoil the data set admits: {err}") from None
        raise


def _prepare(coords: torch.Tensor, n_per_side: int) -> torch.Tensor:
    """The checks and re-panelling of :func:`prepare_shape` on ``(B, K, 2)``; raises on the first failure."""
    c = repanel(normalize(coords.double()), n_per_side)
    check_airfoil(c, max_te_gap=0.02)
    height = c[..., 1].amax(-1) - c[..., 1].amin(-1)
    bad = (height < 0.03) | (height > 0.30)
    if bad.any():
        h = float(height[bad][0])
        raise ValueError(f"its height is {h:.3g} chords, outside the data set's [0.03, 0.30]")
    x_lo, x_hi = c[..., 0].amin(-1), c[..., 0].amax(-1)
    bad = (x_lo < -0.02) | (x_hi > 1.02)
    if bad.any():
        lo, hi = float(x_lo[bad][0]), float(x_hi[bad][0])
        raise ValueError(f"normalised, it spans x/c from {lo:.3g} to {hi:.3g}, beyond [-0.02, 1.02]")
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


def _needs_run(path: Path) -> bool:
    """Whether the polar stored at ``path`` must be (re)computed: absent, unreadable, errored or timed out.

    Finished polars are never recomputed, except those cut short by a timeout (the sweep's or the retry's),
    whose missing points may only have lacked time (a loaded machine) and so are not yet XFOIL's verdict,
    and those whose XFOIL run failed (``error`` set: it crashed, or xvfb-run failed to start) and so never
    ran at all. Records written before ``retry_timed_out`` existed read the same.
    """
    if not path.exists():
        return True
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):  # unreadable: never used
        return True
    return not isinstance(rec, dict) or bool(rec.get("timed_out", False)) or bool(rec.get("error"))


def _polar_job(
    work: Path, key: str, coords: np.ndarray, re: float, alphas: Sequence[float], timeout: float
) -> str:
    from hybridzoo.datamodules.xfoil import XfoilError, XfoilMissing, XfoilTimeout, run_polar

    path = work / f"{key}.json"
    if not _needs_run(path):  # resumable
        return key
    try:
        pol = run_polar(torch.from_numpy(coords), re, alphas, timeout=timeout)
        cl = [None if not np.isfinite(v) else float(v) for v in pol.cl]
        cd = [None if not np.isfinite(v) else float(v) for v in pol.cd]
        retry_cut = bool(getattr(pol, "retry_timed_out", False))
        err, timed_out = "", bool(pol.timed_out) or retry_cut
    except XfoilMissing:
        raise  # a fact about this machine: recorded as a polar, it would stand for XFOIL's verdict for good
    except XfoilError as e:
        # No polar at all: a timeout before the first point, or a run that failed (crashed, xvfb-run could
        # not start). Either is rerun by a resumed build; a failed one also stops the build (build_arrays).
        cl = cd = [None] * len(alphas)
        err, timed_out, retry_cut = (str(e)[-300:] or type(e).__name__), isinstance(e, XfoilTimeout), False
    record = {"cl": cl, "cd": cd, "error": err, "timed_out": timed_out, "retry_timed_out": retry_cut}
    atomic_write_bytes(path, json.dumps(record).encode())
    return key


def _re_key(re: float) -> str:
    """File-name key of a Reynolds number: exact to the 6 significant digits XFOIL is given."""
    return f"re{float(re):.6g}"


class XfoilBuildError(XfoilError):
    """Some polars of a data build could not be run (XFOIL crashed or could not start): no arrays are made.

    An :class:`~hybridzoo.datamodules.xfoil.XfoilError` (the CLI reports those in one line). ``failed`` holds
    the polar keys (file names in the work folder, without ``.json``).
    """

    def __init__(self, message: str, failed: Sequence[str] = ()):
        super().__init__(message)
        self.failed = list(failed)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_build_arguments(
    *, n_uiuc, naca, reynolds, alphas, n_per_side, seed, workers, work_dir, timeout, progress
) -> tuple[list[str], list[float], list[float], float, Path]:
    """Check :func:`build_arrays`' arguments, naming the bad one; return naca, reynolds, alphas, timeout, work_dir."""
    from hybridzoo.datamodules.xfoil import check_alphas, check_reynolds, check_timeout

    for name, v in (("n_uiuc", n_uiuc), ("seed", seed)):
        if not _is_int(v):
            raise TypeError(f"{name} must be a non-negative int, got {type(v).__name__} {v!r}")
        if v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if isinstance(naca, (str, bytes)) or not isinstance(naca, Iterable):
        raise TypeError(f"naca must be a list of 4-digit strings such as ['0012', '2412'], got {naca!r}")
    naca = list(naca)
    if any(not isinstance(c, str) for c in naca):
        raise TypeError(f"naca must be a list of 4-digit strings such as ['0012', '2412'], got {naca!r}")
    for code in naca:
        try:
            parse_naca4(code)
        except ValueError as err:
            raise ValueError(f"naca holds {code!r}, not a NACA 4-digit designation: {err}") from None
    if len(naca) == 0 and n_uiuc == 0:
        raise ValueError("naca is empty and n_uiuc is 0: the data set would hold no aerofoil")
    check_panels_per_side("n_per_side", n_per_side)
    if not _is_int(workers):
        raise TypeError(f"workers must be a positive int, got {type(workers).__name__} {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    if not isinstance(work_dir, (str, os.PathLike)):
        raise TypeError(f"work_dir must be a path, got {type(work_dir).__name__} {work_dir!r}")
    timeout = check_timeout("timeout", timeout)
    alphas = check_alphas("alphas", alphas).tolist()
    if isinstance(reynolds, (str, bytes)) or not isinstance(reynolds, Iterable):
        raise TypeError(f"reynolds must be a list of Reynolds numbers, got {type(reynolds).__name__} {reynolds!r}")
    reynolds = [check_reynolds(f"reynolds[{k}]", re) for k, re in enumerate(reynolds)]
    if not reynolds:
        raise ValueError("reynolds must hold at least one Reynolds number, got none")
    re_keys = [_re_key(re) for re in reynolds]
    if len(set(re_keys)) != len(re_keys):
        raise ValueError(f"reynolds must be distinct (to 6 significant digits, as XFOIL gets them), got {reynolds!r}")
    return naca, reynolds, alphas, timeout, Path(work_dir)


def _report(records: dict[str, dict], work_dir: Path, progress: bool) -> None:
    """Print the build's summary line (with ``progress``); raise :class:`XfoilBuildError` if any polar failed."""
    failed = {k: r for k, r in records.items() if r.get("error") and not r.get("timed_out", False)}
    timed_out = {k for k, r in records.items() if r.get("timed_out", False)}
    partial = {k for k, r in records.items()
               if k not in failed and k not in timed_out and any(v is None for v in r["cl"])}
    n_missing = sum(v is None for k, r in records.items() if k not in failed for v in r["cl"])
    if progress:
        print(
            f"[aerofoil] {len(records)} polars: {len(records) - len(failed) - len(timed_out) - len(partial)} complete, "
            f"{len(partial)} with non-converged points, {len(timed_out)} timed out (their missing points may only "
            f"have lacked time: run the build again to retry them), {len(failed)} failed to run; "
            f"{n_missing} missing points in all",
            flush=True,
        )
    if failed:
        first = next(iter(failed))
        raise XfoilBuildError(
            f"{len(failed)} of {len(records)} polars could not be run (XFOIL crashed or could not start, e.g. "
            f"xvfb-run): {', '.join(list(failed)[:5])}{', ...' if len(failed) > 5 else ''}. Their points never "
            f"ran, so no data set was made rather than count them as non-converged. The finished polars are "
            f"kept in {str(work_dir)!r}: run the build again to retry only the failed ones. First error "
            f"({first}): {failed[first]['error'][-300:]}",
            failed,
        )


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
    build resumes where it stopped; polars that an XFOIL timeout cut short (the sweep or the retry of its
    missing angles), or whose XFOIL run failed, are run again then. The arguments are checked before
    anything runs (Reynolds numbers in [1e4, 1e8], angles within ±30 deg, as :func:`run_polar` takes them).

    With ``progress``, a summary line counts the polars that timed out (their missing points are kept as
    missing, but may only have lacked time: run the build again to retry them) and those that failed.

    Raises:
        TypeError, ValueError: a bad argument (named), or no aerofoil to build (``naca`` empty and
            ``n_uiuc=0``, or no shape passed the checks).
        XfoilMissing: ``xfoil`` or ``xvfb-run`` is not installed (before any polar is written).
        XfoilBuildError: some polars' XFOIL run failed (it crashed or could not start) and produced no
            point at all. Their points never ran, so they are not counted as non-converged: no arrays are
            returned. Every finished polar is kept in ``work_dir``; run the build again to retry the failed ones.
    """
    from hybridzoo.datamodules.xfoil import require_xfoil

    naca, reynolds, alphas, timeout, work_dir = _check_build_arguments(
        n_uiuc=n_uiuc, naca=naca, reynolds=reynolds, alphas=alphas, n_per_side=n_per_side, seed=seed,
        workers=workers, work_dir=work_dir, timeout=timeout, progress=progress,
    )
    require_xfoil()  # before the shapes are collected, and before any polar is written
    duplicates: list[tuple[str, str]] = []
    names, shapes = _collect_shapes(n_uiuc, naca, n_per_side, seed, duplicates)
    if not shapes:
        raise ValueError(
            f"no aerofoil passed the shape checks (naca={list(naca)!r}, n_uiuc={n_uiuc}): nothing to build"
        )
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
    from hybridzoo.datamodules.xfoil import xfoil_runs

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
    records = {key: json.loads((work_dir / f"{key}.json").read_text()) for key in jobs}
    _report(records, work_dir, progress)
    foil, re_col, alpha_col, cl, cd = [], [], [], [], []
    for key, (i, re) in jobs.items():
        rec = records[key]
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
