"""A small XFOIL driver: viscous polars of one aerofoil at one Reynolds number, by subprocess.

XFOIL (Drela, Debian package ``xfoil``) aborts or dies with SIGFPE without an X display even with
its graphics switched off, so it runs under ``xvfb-run -a`` when that is installed. Points where the
boundary-layer iteration does not converge are absent from XFOIL's polar file; they come back here
as NaN with ``converged == False``, never interpolated.

A polar is computed as one sweep outwards from 0 deg (each converged boundary layer is the next
point's initial guess). A point that fails leaves a poisoned boundary layer behind, so the later
points of its branch often fail as well; :func:`run_polar` therefore re-runs the missing angles once
more, each from a freshly initialised boundary layer (``INIT``), in one extra XFOIL process.
"""

from __future__ import annotations

import numbers
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hybridzoo.physics.airfoil import check_airfoil, write_dat
from hybridzoo.physics.validation import is_real_number


@dataclass
class Polar:
    """XFOIL results at the requested angles; NaN where a point did not converge.

    Attributes:
        alpha: requested angles of attack in degrees, ``(A,)``.
        cl, cd, cm: lift, drag and quarter-chord moment coefficients, ``(A,)``.
        converged: ``(A,)`` bool, False where XFOIL gave no converged point.
        re: Reynolds number.
        log: XFOIL's console output tail (for diagnosing failures).
        timed_out: whether the sweep's XFOIL process was killed at the timeout (its missing points may
            only have lacked time, e.g. on a loaded machine, rather than failed to converge).
        retry_timed_out: whether the retry of the missing angles was cut at its time budget (see
            :func:`run_polar`). XFOIL can hang on a boundary layer that diverged from a fresh start, but a
            loaded machine cuts convergeable angles just the same, so the angles it had left are not
            XFOIL's verdict either: the data build counts such a polar as timed out and reruns it.
    """

    alpha: np.ndarray
    cl: np.ndarray
    cd: np.ndarray
    cm: np.ndarray
    converged: np.ndarray
    re: float
    log: str = field(default="", repr=False)
    timed_out: bool = False
    retry_timed_out: bool = False

    @property
    def n_missing(self) -> int:
        """Number of requested angles without a converged result."""
        return int((~self.converged).sum())


class XfoilError(RuntimeError):
    """XFOIL could not be run (not installed, crashed before producing a polar, or timed out)."""


class XfoilMissing(XfoilError):
    """``xfoil`` or ``xvfb-run`` is not on the ``PATH``: a fact about this machine, never about an aerofoil."""


class XfoilTimeout(XfoilError):
    """XFOIL was killed at the timeout before it wrote any polar point."""


class XfoilInterrupted(RuntimeError):
    """XFOIL was stopped because the runs it belonged to were interrupted (:func:`xfoil_runs`).

    Not an :class:`XfoilError`: it says nothing about the aerofoil, and must not be recorded as a failed polar.
    """


# XFOIL runs in its own session (so that a timeout can kill xvfb-run, Xvfb and xfoil together), out of reach
# of the signals that stop this process: the processes still running are tracked, to be killed on the way out.
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # xvfb-run's children (Xvfb, xfoil) too
    except ProcessLookupError:  # already gone
        pass


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def xfoil_runs() -> Iterator[None]:
    """Scope of XFOIL runs that must not outlive it: an exception leaving it kills them all.

    Where an exception leaves the body (an error, Ctrl-C, or SIGTERM, which is turned into
    ``KeyboardInterrupt`` while the body runs, where this is entered in the main thread), every XFOIL
    process still running is killed and the threads waiting on one raise :class:`XfoilInterrupted`
    rather than return a polar that would read as non-convergence. The body must not wait for worker
    threads on its way out before this has killed their XFOIL (e.g. shut a pool down with
    ``wait=False``).
    """
    _stopping.clear()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    except BaseException:
        _stopping.set()
        with _live_lock:
            running = list(_live)
        for proc in running:
            _kill_group(proc)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def xfoil_command() -> list[str] | None:
    """Return the command prefix that runs XFOIL here (``xvfb-run -a xfoil`` when possible), or ``None``."""
    exe = shutil.which("xfoil")
    if exe is None:
        return None
    xvfb = shutil.which("xvfb-run")
    return [xvfb, "-a", exe] if xvfb else None


def require_xfoil() -> list[str]:
    """:func:`xfoil_command`, or :class:`XfoilMissing` when ``xfoil`` or ``xvfb-run`` is not installed."""
    cmd = xfoil_command()
    if cmd is None:
        raise XfoilMissing("xfoil and xvfb-run are required (Debian: apt-get install xfoil xvfb)")
    return cmd


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


#: Reynolds numbers :func:`run_polar` accepts (XFOIL's viscous solution is meant for this range).
RE_RANGE = (1e4, 1e8)
#: Largest angle of attack (degrees, either sign) :func:`run_polar` accepts.
MAX_ALPHA = 30.0


def check_reynolds(name: str, re: object) -> float:
    """Check one Reynolds number (a real scalar, NumPy's included, in :data:`RE_RANGE`) and return it as a float."""
    if not is_real_number(re):
        raise TypeError(f"{name} must be a real number (a Python or numpy scalar), got {type(re).__name__}")
    if not (RE_RANGE[0] <= re <= RE_RANGE[1]):
        raise ValueError(f"{name} must be a Reynolds number in [1e4, 1e8], got {re!r}")
    return float(re)


def check_alphas(name: str, alphas: object) -> np.ndarray:
    """Check angles of attack in degrees and return them as a float64 array (in the given order).

    A non-empty collection of finite real numbers (Python's, NumPy's, 0-d arrays or tensors; not bools,
    not strings) within ±:data:`MAX_ALPHA`, whose distinct values differ by at least 0.001 deg (XFOIL's
    printed resolution; the script asks for 4 decimals).
    """
    if (isinstance(alphas, (str, bytes, Mapping)) or not isinstance(alphas, Iterable)  # a dict: its keys
            or (isinstance(alphas, (np.ndarray, torch.Tensor)) and alphas.ndim != 1)):
        raise TypeError(f"{name} must be a sequence of angles in degrees, got {type(alphas).__name__}")
    items = list(alphas)
    for a in items:
        v = a.item() if isinstance(a, (np.ndarray, torch.Tensor)) and a.ndim == 0 else a
        if not is_real_number(v):
            raise TypeError(f"{name} must hold real numbers (angles in degrees), got {type(a).__name__} {a!r}")
    alpha = np.asarray([float(a) for a in items], dtype=np.float64)
    if alpha.size == 0 or not np.isfinite(alpha).all() or (np.abs(alpha) > MAX_ALPHA).any():
        raise ValueError(
            f"{name} must be a non-empty sequence of finite angles in degrees within ±30, got {alphas!r}"
        )
    uniq = np.unique(np.round(alpha, 4))
    clash = np.diff(uniq) < 1e-3 - 1e-9
    if clash.any():
        k = int(np.nonzero(clash)[0][0])
        raise ValueError(
            f"{name} {uniq[k]!r} and {uniq[k + 1]!r} are closer than XFOIL's printed resolution "
            "(0.001 deg), so their results cannot be told apart"
        )
    return alpha


#: Longest time limit a run takes (s): an XFOIL sweep still running after a week has hung.
MAX_TIMEOUT = 7 * 24 * 3600.0


def check_timeout(name: str, timeout: object) -> float:
    """Check a time limit in seconds: a finite positive real number (NumPy's included, not a bool)."""
    if not is_real_number(timeout):
        raise TypeError(f"{name} must be a positive number of seconds, got {type(timeout).__name__} {timeout!r}")
    t = float(timeout)
    if not (np.isfinite(t) and 0 < t <= MAX_TIMEOUT):  # 1e300 started XFOIL, then overflowed the deadline
        raise ValueError(f"{name} must be a finite positive number of seconds, at most {MAX_TIMEOUT:g} (a week), "
                         f"got {timeout!r}")
    return t


def check_n_iter(name: str, n_iter: object) -> int:
    """Check an iteration count: a positive int (NumPy's included, not a bool); returned as a Python int."""
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {type(n_iter).__name__} {n_iter!r}")
    if n_iter < 1:
        raise ValueError(f"{name} must be a positive int, got {n_iter!r}")
    return int(n_iter)


def _session(re: float, n_iter: int, polar_name: str, body: list[str]) -> str:
    """An XFOIL script: panel ``foil.dat``, viscous at ``re``, accumulate ``body``'s points into ``polar_name``."""
    cmds = ["LOAD foil.dat", "PANE", "OPER", f"VISC {re:.6g}", f"ITER {n_iter}", "PACC", polar_name, "",
            *body, "PACC", "", "QUIT"]
    return "\n".join(cmds) + "\n"


def _script(re: float, alphas: Sequence[float], n_iter: int, polar_name: str) -> str:
    pos = sorted(a for a in alphas if a >= 0)
    neg = sorted((a for a in alphas if a < 0), reverse=True)
    body: list[str] = []
    # Marching outwards from 0 deg reuses each converged boundary layer as the next initial guess.
    for k, branch in enumerate(b for b in (pos, neg) if b):
        if k:  # restart the negative branch from a fresh boundary layer, not from the last positive angle
            body.append("INIT")
        body += [f"ALFA {a:.4f}" for a in branch]
    return _session(re, n_iter, polar_name, body)


def _retry_script(re: float, alphas: Sequence[float], n_iter: int, polar_name: str) -> str:
    """Each angle on its own, from a freshly initialised boundary layer (as if XFOIL ran it alone).

    XFOIL's ``INIT`` *toggles* its "BL initialised" flag; every viscous point leaves it set (even a
    failed one), and a fresh process starts with it clear, so it is toggled before every angle but
    the first.
    """
    body: list[str] = []
    for k, a in enumerate(alphas):
        body += (["INIT"] if k else []) + [f"ALFA {a:.4f}"]
    return _session(re, n_iter, polar_name, body)


#: Time budget of the retry process (see :func:`run_polar`): this, plus so much per retried angle, in seconds.
RETRY_SECONDS, RETRY_SECONDS_PER_ANGLE = 5.0, 3.0

#: XFOIL prints alpha with 3 decimals (the script asks for 4): a row belongs to a requested angle
#: when it is the nearest row and within half a printed digit (plus rounding slack).
_ALPHA_TOL = 6e-4


def _xfoil(
    cmd: list[str], cwd: str, script: str, polar_name: str, timeout: float
) -> tuple[str, dict | None, bool]:
    """Run one XFOIL process: its console output, polar (``None`` if none written) and whether it timed out."""
    if _stopping.is_set():
        raise XfoilInterrupted("XFOIL runs were interrupted")
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    with _live_lock:
        _live.add(proc)
    if _stopping.is_set():  # stopped between the check above and the registration: nobody else kills it
        _kill_group(proc)
    timed_out = False
    try:
        try:
            out, _ = proc.communicate(script, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, _ = proc.communicate()
            out = (out or "") + f"\n[hybridzoo] killed after {timeout} s"
    finally:
        if proc.poll() is None:  # communicate itself failed: leave nothing running
            _kill_group(proc)
            proc.wait()
        with _live_lock:
            _live.discard(proc)
    if _stopping.is_set():
        raise XfoilInterrupted("XFOIL runs were interrupted")
    out = out or ""
    polar_file = Path(cwd) / polar_name
    if not polar_file.exists():
        return out + f"\n[hybridzoo] XFOIL exit code {proc.returncode}, no polar file", None, timed_out
    return out, parse_polar(polar_file.read_text()), timed_out


def _match(alpha: np.ndarray, cols: dict[str, np.ndarray], cl, cd, cm, only: np.ndarray) -> None:
    """Fill ``cl, cd, cm`` at the requested angles ``alpha[only]`` from the nearest polar row (in place)."""
    got = cols["alpha"]
    if got.size == 0:
        return
    for i in np.nonzero(only)[0]:
        dist = np.abs(got - alpha[i])
        j = int(np.argmin(dist))
        if dist[j] <= _ALPHA_TOL:
            cl[i], cd[i], cm[i] = cols["cl"][j], cols["cd"][j], cols["cm"][j]


def run_polar(
    coords: torch.Tensor | np.ndarray,
    re: float,
    alphas: Sequence[float],
    *,
    n_iter: int = 100,
    timeout: float = 60.0,
    retry: bool = True,
) -> Polar:
    """Run XFOIL on one aerofoil at Reynolds number ``re`` and angles ``alphas`` (degrees).

    Args:
        coords: ``(K, 2)`` chord-normalised contour in Selig order (checked with ``check_airfoil``).
        re: chord Reynolds number, in [1e4, 1e8].
        alphas: angles of attack in degrees (any order; results follow this order). Distinct angles
            must differ by at least 0.001 deg (XFOIL's printed resolution).
        n_iter: boundary-layer Newton iterations per point (a positive int).
        timeout: seconds (finite, positive) before the sweep's XFOIL (and its X server) are killed. The
            retry, if any angle is missing, gets at most :data:`RETRY_SECONDS` plus
            :data:`RETRY_SECONDS_PER_ANGLE` per angle (and never more than ``timeout``); the angles it
            finished before the cut are kept, and the cut is recorded in ``Polar.retry_timed_out``.
        retry: re-run the angles missing after the sweep once more, each from a fresh boundary layer
            (``INIT``); points that still do not converge stay missing.

    XFOIL re-panels the contour itself (``PANE``: 160 nodes) with its default e^9 transition.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range (before XFOIL runs).
        XfoilError: XFOIL/xvfb-run missing (:class:`XfoilMissing`), or XFOIL produced no polar file at all
            (:class:`XfoilTimeout` when it was killed at the timeout before writing one).
    """
    if isinstance(coords, torch.Tensor):
        coords_t = coords  # checked as it is: an integer tensor is refused, not cast
    else:
        try:
            coords_t = torch.as_tensor(np.asarray(coords, dtype=np.float64))
        except (TypeError, ValueError) as err:  # numpy's "could not convert string to float" named no argument
            raise TypeError(f"coords must be a (K, 2) array of numbers: {err}") from None
    coords_t = check_airfoil(coords_t.detach().cpu(), "coords").double()
    if coords_t.ndim != 2:
        raise ValueError(f"coords must be one contour (K, 2), got shape {tuple(coords_t.shape)}")
    re = check_reynolds("re", re)
    alpha = check_alphas("alphas", alphas)
    asked = np.round(alpha, 4)  # the script's ALFA commands carry 4 decimals
    # Checked here: n_iter=2.5 made XFOIL ignore ITER and fail every point, 0 or a string stopped it before
    # any polar, a negative or NaN timeout failed inside subprocess, a string one with "float + str".
    n_iter = check_n_iter("n_iter", n_iter)
    timeout = check_timeout("timeout", timeout)
    if not isinstance(retry, bool):  # "no" would be truthy
        raise TypeError(f"retry must be a bool, got {type(retry).__name__} {retry!r}")
    cmd = require_xfoil()
    cl, cd, cm = (np.full(alpha.shape, np.nan) for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="hzxf") as tmp:
        write_dat(Path(tmp) / "foil.dat", coords_t, "hybridzoo")
        out, cols, timed_out = _xfoil(cmd, tmp, _script(float(re), alpha.tolist(), n_iter, "polar.txt"), "polar.txt",
                                      timeout)
        if cols is None:
            error = XfoilTimeout if timed_out else XfoilError
            raise error(f"XFOIL wrote no polar; output tail:\n{out[-2000:]}")
        _match(asked, cols, cl, cd, cm, np.ones(alpha.shape, dtype=bool))
        missing = ~np.isfinite(cl)
        if retry and missing.any():
            # One more process for the missing angles, each from a fresh boundary layer; whatever still
            # fails stays missing. A crash or timeout here keeps the sweep's results.
            again = sorted(set(asked[missing].tolist()), key=abs)
            # XFOIL can hang after a point whose fresh boundary layer diverged to infinity (NACA 0006 at
            # Re 1e6 and 10 deg): a converging point takes about a second, so the retry gets a budget per
            # angle rather than the sweep's whole timeout, which each such polar used to spend in full.
            budget = min(timeout, RETRY_SECONDS + RETRY_SECONDS_PER_ANGLE * len(again))
            out2, cols2, retry_timed_out = _xfoil(
                cmd, tmp, _retry_script(float(re), again, n_iter, "retry.txt"), "retry.txt", budget
            )
            if cols2 is not None:
                _match(asked, cols2, cl, cd, cm, missing)
            out = out[-2000:] + "\n[hybridzoo] retry of the missing angles from a fresh boundary layer:\n" + out2
        else:
            retry_timed_out = False
    return Polar(alpha, cl, cd, cm, np.isfinite(cl), float(re), out[-4000:], timed_out, retry_timed_out)
