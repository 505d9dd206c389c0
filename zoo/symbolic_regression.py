"""Symbolic regression backends of :func:`hybridzoo.zoo.distil.distil`: fits of one term, as Pareto fronts.

- ``"pysr"``: PySR (genetic programming in Julia), run in a subprocess so that a missing Julia fails
  fast with a clear message and never hangs or crashes the caller.
- ``"sindy"``: pure Python: pysindy's sequentially thresholded least squares (STLSQ) over a
  polynomial candidate library, its threshold swept to trace a Pareto front like PySR's.
- ``"auto"``: PySR when Julia is available, else SINDy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy
from hybridzoo.physics.validation import check_positive_int, is_real_number
from hybridzoo.zoo.symbolic import check_input_names, parse_expression

BACKENDS = ("auto", "pysr", "sindy")


class BackendUnavailable(RuntimeError):
    """The requested symbolic-regression backend cannot run here (e.g. PySR without Julia)."""


@dataclass
class Candidate:
    """One point of a Pareto front."""

    complexity: int
    loss: float
    expression: sympy.Expr
    score: float = 0.0


# ---------------------------------------------------------------------------------------- selection
def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Keep the best loss per complexity, then only candidates that beat every simpler one."""
    best: dict[int, Candidate] = {}
    for c in candidates:
        if math.isfinite(c.loss) and (c.complexity not in best or c.loss < best[c.complexity].loss):
            best[c.complexity] = c
    front: list[Candidate] = []
    for k in sorted(best):
        if not front or best[k].loss < front[-1].loss:
            front.append(best[k])
    for prev, c in zip([None, *front[:-1]], front):
        c.score = 0.0 if prev is None else (
            -(math.log(max(c.loss, 1e-300)) - math.log(max(prev.loss, 1e-300))) / (c.complexity - prev.complexity)
        )
    return front


def select(front: list[Candidate]) -> int:
    """PySR's ``"score"`` rule: the largest drop in log-loss per unit of complexity."""
    if not front:
        raise ValueError("empty Pareto front")
    return max(range(len(front)), key=lambda i: front[i].score)


def _check_samples(inputs: object, target: object, input_names: object) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``inputs (N, d)`` and ``target (N,)`` as finite float arrays, and ``d`` distinct ``input_names``."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty (N, d) array, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"target must have shape ({x.shape[0]},) to match inputs {x.shape}, got {y.shape}")
    for name, a in (("inputs", x), ("target", y)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values ({int((~np.isfinite(a)).sum())} of {a.size})")
    return x, y, check_input_names(input_names, x.shape[1])


# ---------------------------------------------------------------------------------------- SINDy
def fit_sindy(
    inputs: np.ndarray, target: np.ndarray, input_names: list[str], *, max_degree: int = 3, n_thresholds: int = 60
) -> list[Candidate]:
    """Sparse polynomial regression (pysindy STLSQ) swept over thresholds; returns the Pareto front.

    Args:
        inputs: ``(N, d)`` samples.
        target: ``(N,)`` values of the term at the samples.
        input_names: names of the ``d`` inputs (sympy symbols).
        max_degree: highest total degree of the candidate monomials (constant included).
        n_thresholds: number of thresholds in the log-spaced sweep.

    Raises:
        ValueError: non-finite samples, or ``input_names`` that do not name each input column once.
    """
    import pysindy as ps

    inputs, target, input_names = _check_samples(inputs, target, input_names)
    check_positive_int("max_degree", max_degree, allow_zero=True)
    check_positive_int("n_thresholds", n_thresholds)
    lib = ps.PolynomialLibrary(degree=max_degree, include_bias=True)
    theta = np.asarray(lib.fit_transform(inputs))  # plain ndarray, not a pysindy AxesArray
    powers = lib.powers_
    syms = [sympy.Symbol(n) for n in input_names]
    monomials = [sympy.Mul(*[s**int(p) for s, p in zip(syms, row)]) for row in powers]
    # a monomial that is 0 at every sample (an input that is always 0) cannot be fitted, and its zero norm
    # would put NaNs into the column scaling of the least squares and of STLSQ: leave it out
    norms = np.linalg.norm(theta, axis=0)
    keep = np.flatnonzero(norms > 0)
    theta, norms, monomials = theta[:, keep], norms[keep], [monomials[i] for i in keep]
    y = target.reshape(-1, 1)
    candidates = [Candidate(0, float(np.mean(y**2)), sympy.Integer(0))]
    if keep.size == 0:
        return pareto_front(candidates)
    ls = np.linalg.lstsq(theta / norms, y, rcond=None)[0].ravel()
    top = np.abs(ls).max()
    if top == 0:  # a zero target: 0 is the fit, and the threshold sweep below needs a positive scale
        return pareto_front(candidates)
    for thr in np.logspace(np.log10(top) - 6, np.log10(top), n_thresholds):
        opt = ps.STLSQ(threshold=float(thr), alpha=1e-8, normalize_columns=True, max_iter=50)
        with warnings.catch_warnings():  # the sweep's top thresholds remove every term on purpose
            warnings.simplefilter("ignore", UserWarning)
            opt.fit(theta, y)
        coef = opt.coef_.ravel()
        support = np.flatnonzero(coef)
        if support.size == 0:
            continue
        loss = float(np.mean((theta @ coef - target) ** 2))
        expr = sum((sympy.Float(float(coef[i]), 8) * monomials[i] for i in support), sympy.Integer(0))
        candidates.append(Candidate(int(support.size), loss, expr))
    return pareto_front(candidates)


# ---------------------------------------------------------------------------------------- PySR
def pysr_available(timeout: float = 60.0) -> tuple[bool, str]:
    """Whether PySR can start here (imports in a subprocess, so a Julia download cannot hang us)."""
    try:
        proc = subprocess.run([sys.executable, "-c", "import pysr"], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHON_JULIACALL_HANDLE_SIGNALS": "yes"})
    except subprocess.TimeoutExpired:
        return False, f"importing pysr did not finish within {timeout:.0f} s (Julia being installed or compiled?)"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return False, f"PySR cannot start: it needs Julia, which is not installed and could not be fetched ({last})"
    return True, "ok"


_PYSR_WORKER = r"""
import json, sys
import numpy as np
from pysr import PySRRegressor
data = np.load(sys.argv[1])
opts = json.loads(sys.argv[3])
m = PySRRegressor(binary_operators=["+", "-", "*"], unary_operators=[], maxsize=opts["maxsize"],
                  niterations=opts["niterations"], random_state=opts["seed"], deterministic=opts["deterministic"],
                  parallelism="serial" if opts["deterministic"] else "multithreading", progress=False, verbosity=0)
m.fit(data["X"], data["y"], variable_names=opts["names"])
rows = [{"complexity": int(r["complexity"]), "loss": float(r["loss"]), "expression": str(r["sympy_format"])}
        for _, r in m.equations_.iterrows()]
json.dump(rows, open(sys.argv[2], "w"))
"""


def fit_pysr(
    inputs: np.ndarray, target: np.ndarray, input_names: list[str], *, niterations: int = 40, maxsize: int = 15,
    seed: int = 0, deterministic: bool = True, timeout: float = 1800.0,
) -> list[Candidate]:
    """Symbolic regression with PySR in a subprocess; returns its Pareto front (hall of fame).

    Raises:
        BackendUnavailable: PySR cannot start here, fails, or does not finish within ``timeout`` seconds.
    """
    inputs, target, input_names = _check_samples(inputs, target, input_names)
    if not is_real_number(timeout) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    ok, why = pysr_available()
    if not ok:
        raise BackendUnavailable(why)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, X=inputs, y=target)
        opts = {"niterations": niterations, "maxsize": maxsize, "seed": seed, "deterministic": deterministic,
                "names": input_names}
        try:
            proc = subprocess.run([sys.executable, "-c", _PYSR_WORKER, str(data), str(out), json.dumps(opts)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:  # run() has killed the worker; the caller may fall back to SINDy
            raise BackendUnavailable(f"PySR did not finish within timeout={timeout:g} s (raise timeout, or lower "
                                     f"niterations={niterations} or maxsize={maxsize})") from None
        if proc.returncode != 0:
            raise BackendUnavailable(f"PySR failed: {proc.stderr.strip()[-2000:]}")
        rows = json.loads(out.read_text())
    return pareto_front([Candidate(r["complexity"], r["loss"], parse_expression(r["expression"], input_names))
                         for r in rows])


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to ``"pysr"`` when Julia is available, else ``"sindy"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if shutil.which("julia") is None and not os.environ.get("PYTHON_JULIAPKG_EXE"):
        return "sindy"  # no Julia on this machine: don't even try PySR
    return "pysr" if pysr_available()[0] else "sindy"
