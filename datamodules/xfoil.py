"""A small XFOIL driver: viscous polars of one aerofoil at one Reynolds number, by subprocess.

XFOIL (Drela, Debian package ``xfoil``) aborts or dies with SIGFPE without an X display even with
its graphics switched off, so it runs under ``xvfb-run -a`` when that is installed. Points where the
boundary-layer iteration does not converge are absent from XFOIL's polar file; they come back here
as NaN with ``converged == False``, never interpolated.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hybridzoo.physics.airfoil import check_airfoil, write_dat


@dataclass
class Polar:
    """XFOIL results at the requested angles; NaN where a point did not converge.

    Attributes:
        alpha: requested angles of attack in degrees, ``(A,)``.
        cl, cd, cm: lift, drag and quarter-chord moment coefficients, ``(A,)``.
        converged: ``(A,)`` bool, False where XFOIL gave no converged point.
        re: Reynolds number.
        log: XFOIL's console output tail (for diagnosing failures).
    """

    alpha: np.ndarray
    cl: np.ndarray
    cd: np.ndarray
    cm: np.ndarray
    converged: np.ndarray
    re: float
    log: str = field(default="", repr=False)

    @property
    def n_missing(self) -> int:
        """Number of requested angles without a converged result."""
        return int((~self.converged).sum())


class XfoilError(RuntimeError):
    """XFOIL could not be run (not installed, crashed before producing a polar, or timed out)."""


def xfoil_command() -> list[str] | None:
    """Return the command prefix that runs XFOIL here (``xvfb-run -a xfoil`` when possible), or ``None``."""
    exe = shutil.which("xfoil")
    if exe is None:
        return None
    xvfb = shutil.which("xvfb-run")
    return [xvfb, "-a", exe] if xvfb else None


def xfoil_available() -> bool:
    """Whether both ``xfoil`` and ``xvfb-run`` are on the ``PATH``."""
    return xfoil_command() is not None


def parse_polar(text: str) -> dict[str, np.ndarray]:
    """Parse the body of an XFOIL polar save file into column arrays (``alpha`` in degrees, ``cl``...)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.split()[:2] == ["alpha", "CL"]), None)
    if header is None:
        raise ValueError("text is not an XFOIL polar: no 'alpha CL ...' header line")
    names = [n.lower() for n in lines[header].split()]
    rows = []
    for line in lines[header + 2 :]:
        parts = line.split()
        if len(parts) == len(names):
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                continue
    data = np.array(rows, dtype=np.float64).reshape(-1, len(names))
    return {name: data[:, j] for j, name in enumerate(names)}


def _script(re: float, alphas: Sequence[float], n_iter: int) -> str:
    pos = sorted(a for a in alphas if a >= 0)
    neg = sorted((a for a in alphas if a < 0), reverse=True)
    cmds = ["LOAD foil.dat", "PANE", "OPER", f"VISC {re:.6g}", f"ITER {n_iter}", "PACC", "polar.txt", ""]
    # Marching outwards from 0 deg reuses each converged boundary layer as the next initial guess.
    for k, branch in enumerate(b for b in (pos, neg) if b):
        if k:  # restart the negative branch from a fresh boundary layer, not from the last positive angle
            cmds.append("INIT")
        cmds += [f"ALFA {a:.4f}" for a in branch]
    cmds += ["PACC", "", "QUIT"]
    return "\n".join(cmds) + "\n"


def run_polar(
    coords: torch.Tensor | np.ndarray,
    re: float,
    alphas: Sequence[float],
    *,
    n_iter: int = 100,
    timeout: float = 60.0,
) -> Polar:
    """Run XFOIL on one aerofoil at Reynolds number ``re`` and angles ``alphas`` (degrees).

    Args:
        coords: ``(K, 2)`` chord-normalised contour in Selig order (checked with ``check_airfoil``).
        re: chord Reynolds number, in [1e4, 1e8].
        alphas: angles of attack in degrees (any order; results follow this order).
        n_iter: boundary-layer Newton iterations per point.
        XFOIL re-panels the contour itself (``PANE``: 160 nodes) with its default e^9 transition.
        timeout: seconds before XFOIL (and its X server) are killed.

    Raises:
        XfoilError: XFOIL/xvfb-run missing, or XFOIL produced no polar file at all.
    """
    coords_t = (
        torch.as_tensor(np.asarray(coords, dtype=np.float64))
        if not isinstance(coords, torch.Tensor)
        else coords
    )
    coords_t = check_airfoil(coords_t.detach().double().cpu(), "coords")
    if coords_t.ndim != 2:
        raise ValueError(f"coords must be one contour (K, 2), got shape {tuple(coords_t.shape)}")
    if isinstance(re, bool) or not isinstance(re, (int, float)) or not (1e4 <= re <= 1e8):
        raise ValueError(f"re must be a Reynolds number in [1e4, 1e8], got {re!r}")
    alpha = np.asarray(list(alphas), dtype=np.float64)
    if alpha.ndim != 1 or alpha.size == 0 or not np.isfinite(alpha).all() or (np.abs(alpha) > 30).any():
        raise ValueError(
            f"alphas must be a non-empty sequence of finite angles in degrees within ±30, got {alphas!r}"
        )
    cmd = xfoil_command()
    if cmd is None:
        raise XfoilError("xfoil and xvfb-run are required (Debian: apt-get install xfoil xvfb)")
    with tempfile.TemporaryDirectory(prefix="hzxf") as tmp:
        write_dat(Path(tmp) / "foil.dat", coords_t, "hybridzoo")
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(_script(float(re), alpha.tolist(), n_iter), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # xvfb-run's children (Xvfb, xfoil) too
            out, _ = proc.communicate()
            out = (out or "") + f"\n[hybridzoo] killed after {timeout} s"
        polar_file = Path(tmp) / "polar.txt"
        if not polar_file.exists():
            raise XfoilError(
                f"XFOIL wrote no polar (exit code {proc.returncode}); output tail:\n{out[-2000:]}"
            )
        cols = parse_polar(polar_file.read_text())
    got = np.round(cols["alpha"], 3)
    cl, cd, cm = (np.full(alpha.shape, np.nan) for _ in range(3))
    for i, a in enumerate(np.round(alpha, 3)):
        hit = np.nonzero(np.isclose(got, a, atol=6e-3))[0]
        if hit.size:
            j = hit[-1]
            cl[i], cd[i], cm[i] = cols["cl"][j], cols["cd"][j], cols["cm"][j]
    return Polar(alpha, cl, cd, cm, np.isfinite(cl), float(re), out[-4000:])
