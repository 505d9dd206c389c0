"""Symbolic distillation of a hybrid model's learned terms.

``distil(model)`` samples each learned term where the model was trained, fits symbolic expressions,
keeps a complexity-vs-loss Pareto front, picks one expression per term, puts the expressions back
into a copy of the hybrid model as :class:`~hybridzoo.zoo.symbolic.SympyModule` s (constants
trainable), optionally fine-tunes those constants with the Trainer, and reports metrics.

Backends:
- ``"pysr"``: PySR (genetic programming in Julia), run in a subprocess so that a missing Julia fails
  fast with a clear message and never hangs or crashes the caller.
- ``"sindy"``: pure Python: pysindy's sequentially thresholded least squares (STLSQ) over a
  polynomial candidate library, its threshold swept to trace a Pareto front like PySR's.
- ``"auto"``: PySR when Julia is available, else SINDy.

A model supports distillation by implementing three methods:
``distillation_data(datamodule) -> DistillationData``, ``with_terms(modules) -> HybridModule`` and
``distillation_metrics(symbolic_model, datamodule, fine_tune_epochs) -> dict``. It may also set
``distillation_options = {backend: {option: value}}``: its defaults for that backend's options
(e.g. ``{"sindy": {"max_degree": 2}}``), which the caller's ``backend_options`` override.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy
import torch
from hybridzoo.zoo.symbolic import SympyModule, parse_expression

BACKENDS = ("auto", "pysr", "sindy")


class BackendUnavailable(RuntimeError):
    """The requested symbolic-regression backend cannot run here (e.g. PySR without Julia)."""


@dataclass
class DistillationData:
    """Samples of the learned terms: ``inputs (N, d)`` named ``input_names``; ``targets[name] (N,)``."""

    inputs: torch.Tensor
    input_names: list[str]
    targets: dict[str, torch.Tensor]


@dataclass
class Candidate:
    """One point of a Pareto front."""

    complexity: int
    loss: float
    expression: sympy.Expr
    score: float = 0.0


@dataclass
class TermFit:
    """The distillation of one learned term."""

    name: str
    input_names: list[str]
    pareto: list[Candidate]
    selected: int
    module: SympyModule

    @property
    def expression(self) -> sympy.Expr:
        """The selected expression (with the module's current, possibly fine-tuned, constants)."""
        return self.module.expression()

    @property
    def latex(self) -> str:
        """LaTeX of the selected expression."""
        return sympy.latex(self.expression)


@dataclass
class DistillationResult:
    """What :func:`distil` returns: per-term fits, the symbolic hybrid model and metrics."""

    backend: str
    terms: dict[str, TermFit]
    model: Any
    metrics: dict[str, float] = field(default_factory=dict)

    def equations(self) -> dict[str, str]:
        """``{term: expression}`` as strings."""
        return {k: str(v.expression) for k, v in self.terms.items()}

    def pareto_rows(self) -> list[dict[str, Any]]:
        """All Pareto fronts as rows: term, complexity, loss, score, selected, expression."""
        rows = []
        for name, fit in self.terms.items():
            for i, c in enumerate(fit.pareto):
                rows.append({"term": name, "complexity": c.complexity, "loss": c.loss, "score": c.score,
                             "selected": i == fit.selected, "expression": str(c.expression)})
        return rows

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the Pareto table as CSV."""
        path = Path(path)
        rows = self.pareto_rows()
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return path

    def summary(self) -> str:
        """A readable report: selected equations, LaTeX, Pareto fronts and metrics."""
        lines = [f"symbolic distillation (backend: {self.backend})"]
        for name, fit in self.terms.items():
            lines.append(f"  {name}: {fit.expression}    LaTeX: {fit.latex}")
            lines.append("    complexity        loss     score  expression")
            for i, c in enumerate(fit.pareto):
                mark = "*" if i == fit.selected else " "
                lines.append(f"   {mark}{c.complexity:9d}  {c.loss:10.3e}  {c.score:8.3f}  {c.expression}")
        if self.metrics:
            lines.append("  metrics:")
            lines += [f"    {k} = {v:.6g}" for k, v in self.metrics.items()]
        return "\n".join(lines)


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
    """
    import pysindy as ps

    lib = ps.PolynomialLibrary(degree=max_degree, include_bias=True)
    theta = np.asarray(lib.fit_transform(inputs))  # plain ndarray, not a pysindy AxesArray
    powers = lib.powers_
    syms = [sympy.Symbol(n) for n in input_names]
    monomials = [sympy.Mul(*[s**int(p) for s, p in zip(syms, row)]) for row in powers]
    y = target.reshape(-1, 1)
    norms = np.linalg.norm(theta, axis=0)
    ls = np.linalg.lstsq(theta / norms, y, rcond=None)[0].ravel()
    top = np.abs(ls).max()
    candidates = [Candidate(0, float(np.mean(y**2)), sympy.Integer(0))]
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
    """Symbolic regression with PySR in a subprocess; returns its Pareto front (hall of fame)."""
    ok, why = pysr_available()
    if not ok:
        raise BackendUnavailable(why)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, X=inputs, y=target)
        opts = {"niterations": niterations, "maxsize": maxsize, "seed": seed, "deterministic": deterministic,
                "names": input_names}
        proc = subprocess.run([sys.executable, "-c", _PYSR_WORKER, str(data), str(out), json.dumps(opts)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BackendUnavailable(f"PySR failed: {proc.stderr.strip()[-2000:]}")
        rows = json.loads(out.read_text())
    return pareto_front([Candidate(r["complexity"], r["loss"], parse_expression(r["expression"], input_names))
                         for r in rows])


# ---------------------------------------------------------------------------------------- driver
def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to ``"pysr"`` when Julia is available, else ``"sindy"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if shutil.which("julia") is None and not os.environ.get("PYTHON_JULIAPKG_EXE"):
        return "sindy"  # no Julia on this machine: don't even try PySR
    return "pysr" if pysr_available()[0] else "sindy"


def distil(
    model: Any,
    datamodule: Any | None = None,
    *,
    backend: str = "auto",
    fine_tune_epochs: int = 20,
    seed: int = 0,
    **backend_options: Any,
) -> DistillationResult:
    """Distil every learned term of ``model`` into a symbolic expression.

    Args:
        model: a zoo model implementing ``distillation_data``, ``with_terms`` and ``distillation_metrics``.
        datamodule: the data the terms are sampled over (default: ``model.datamodule()``).
        backend: ``"auto"``, ``"pysr"`` or ``"sindy"`` (see the module docstring).
        fine_tune_epochs: epochs of fine-tuning the symbolic model's constants with the Trainer (0: none).
        seed: seed of sampling and of PySR.
        **backend_options: passed to :func:`fit_sindy` or :func:`fit_pysr`, over the model's
            ``distillation_options`` for the chosen backend.

    Returns:
        A :class:`DistillationResult`.

    Raises:
        BackendUnavailable: ``backend="pysr"`` where PySR cannot run.
    """
    for method in ("distillation_data", "with_terms", "distillation_metrics"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{type(model).__name__} does not support distillation (no {method}())")
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int) or fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs must be a non-negative int, got {fine_tune_epochs!r}")
    chosen = resolve_backend(backend)
    dm = datamodule if datamodule is not None else model.datamodule()
    torch.manual_seed(seed)
    data: DistillationData = model.distillation_data(dm)
    backend_options = {**getattr(model, "distillation_options", {}).get(chosen, {}), **backend_options}
    x = data.inputs.detach().double().cpu().numpy()
    fits: dict[str, TermFit] = {}
    for name, target in data.targets.items():
        y = target.detach().double().cpu().numpy()
        if chosen == "pysr":
            front = fit_pysr(x, y, data.input_names, seed=seed, **backend_options)
        else:
            front = fit_sindy(x, y, data.input_names, **backend_options)
        i = select(front)
        fits[name] = TermFit(name, data.input_names, front, i, SympyModule(front[i].expression, data.input_names))
    symbolic = model.with_terms({k: v.module for k, v in fits.items()})
    if hasattr(symbolic.net, "terms"):  # the model may have simplified a term (see its with_terms)
        for k, fit in fits.items():
            fit.module = symbolic.net.terms[k]
    metrics = model.distillation_metrics(symbolic, dm, fine_tune_epochs)
    return DistillationResult(chosen, fits, symbolic, metrics)
