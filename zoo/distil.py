"""Symbolic distillation of a hybrid model's learned terms.

``distil(model)`` samples each learned term where the model was trained, fits symbolic expressions,
keeps a complexity-vs-loss Pareto front, picks one expression per term, puts the expressions back
into a copy of the hybrid model as :class:`~hybridzoo.zoo.symbolic.SympyModule` s (constants
trainable), optionally fine-tunes those constants with the Trainer, and reports metrics.

Backends (``"pysr"``, ``"sindy"``, ``"auto"``): :mod:`hybridzoo.zoo.symbolic_regression`.

A model supports distillation by implementing three methods:
``distillation_data(datamodule) -> DistillationData``, ``with_terms(modules) -> HybridModule`` and
``distillation_metrics(symbolic_model, datamodule, fine_tune_epochs) -> dict``. It may also set
``distillation_options = {backend: {option: value}}``: its defaults for that backend's options
(e.g. ``{"sindy": {"max_degree": 2}}``), which the caller's ``backend_options`` override.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy
import torch
from hybridzoo.datamodules.splits import check_seed
from hybridzoo.physics.validation import check_bool
from hybridzoo.zoo.symbolic import SympyModule, check_input_names
from hybridzoo.zoo.symbolic_regression import (
    BackendUnavailable,
    Candidate,
    fit_pysr,
    fit_sindy,
    resolve_backend,
    select,
)

__all__ = ["BackendUnavailable", "DistillationData", "DistillationResult", "TermFit", "distil"]


@dataclass
class DistillationData:
    """Samples of the learned terms: ``inputs (N, d)`` named ``input_names``; ``targets[name] (N,)``."""

    inputs: torch.Tensor
    input_names: list[str]
    targets: dict[str, torch.Tensor]


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

    def to_csv(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the Pareto table as CSV to ``path``; an existing file is replaced only with ``overwrite=True``.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is false.
        """
        check_bool("overwrite", overwrite)
        path = Path(path)
        text = self.pareto_csv()
        try:  # mode "x" checks and creates in one step: no window for another writer in between
            fh = open(path, "w" if overwrite else "x", newline="")
        except FileExistsError:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from None
        with fh:
            fh.write(text)
        return path

    def pareto_csv(self) -> str:
        """The Pareto table (:meth:`pareto_rows`) as CSV text, header first."""
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=["term", "complexity", "loss", "score", "selected", "expression"])
        writer.writeheader()
        writer.writerows(self.pareto_rows())
        return buf.getvalue()

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


# ---------------------------------------------------------------------------------------- driver
def fit_constants(model: Any, epochs: int, **fit_kwargs: Any) -> None:
    """Fit a formula's constants with a quiet ``lightning.Trainer``: ``epochs`` epochs on the model's device.

    No logger, checkpoints, progress bar, model summary or validation; ``fit_kwargs`` go to ``Trainer.fit``.
    The model stays on its device (Lightning's teardown would leave it on the CPU), also when the fit raises.
    """
    import lightning as L

    device = model.device
    trainer = L.Trainer(max_epochs=epochs, **trainer_device(device), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    try:
        trainer.fit(model, **fit_kwargs)
    finally:
        model.to(device)


def trainer_device(device: torch.device) -> dict[str, Any]:
    """The Trainer's ``accelerator`` and ``devices`` that run on ``device``."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index if device.index is not None
                                                  else torch.cuda.current_device()]}
    if device.type == "mps":
        return {"accelerator": "mps", "devices": 1}
    return {"accelerator": "cpu", "devices": 1}


def _cuda_indices(model: Any) -> list[int]:
    """Indices of the CUDA devices that hold ``model``'s tensors (none for a CPU model or a non-module)."""
    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, torch.nn.Module) else []
    devices = {t.device for t in tensors}
    if isinstance(getattr(model, "device", None), torch.device):
        devices.add(model.device)
    return sorted({d.index if d.index is not None else torch.cuda.current_device()
                   for d in devices if d.type == "cuda"})


def _floating_dtype(model: Any) -> torch.dtype | None:
    """``model.dtype`` where it is a floating dtype (a LightningModule's), else ``None``: the default dtype."""
    dtype = getattr(model, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None


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
        seed: seed of sampling and of PySR, an int in ``[0, 2**32)``. The sampling runs on a forked RNG:
            the caller's global ``torch`` RNG state (CPU, and CUDA where the model is) is left as it was.
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
    check_seed("seed", seed)  # numpy's (and so PySR's) seeds are 32-bit, as the data modules' are
    chosen = resolve_backend(backend)
    dm = datamodule if datamodule is not None else model.datamodule()
    cuda = _cuda_indices(model)
    # forking all CUDA devices would initialise CUDA (and warn) for a CPU model; seeding only the forked
    # generators (not torch.manual_seed, which also reseeds every CUDA device) leaves the others untouched
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for i in cuda:
            with torch.cuda.device(i):
                torch.cuda.manual_seed(seed)
        data: DistillationData = model.distillation_data(dm)
    if not isinstance(data, DistillationData):
        raise TypeError(f"{type(model).__name__}.distillation_data() must return a DistillationData, "
                        f"got {type(data).__name__}")
    x = data.inputs.detach().double().cpu().numpy()
    names = check_input_names(data.input_names, x.shape[1] if x.ndim == 2 else None)
    backend_options = {**getattr(model, "distillation_options", {}).get(chosen, {}), **backend_options}
    dtype = _floating_dtype(model)  # the formulas' constants keep the model's precision
    fits: dict[str, TermFit] = {}
    for name, target in data.targets.items():
        y = target.detach().double().cpu().numpy()
        if chosen == "pysr":
            front = fit_pysr(x, y, names, seed=seed, **backend_options)
        else:
            front = fit_sindy(x, y, names, **backend_options)
        i = select(front)
        fits[name] = TermFit(name, names, front, i, SympyModule(front[i].expression, names, dtype=dtype))
    symbolic = model.with_terms({k: v.module for k, v in fits.items()})
    # the model may have rebuilt or simplified a formula (see its with_terms): report the one it holds
    held = getattr(getattr(symbolic, "net", None), "terms", None)
    if isinstance(held, (dict, torch.nn.ModuleDict)):
        for k, fit in fits.items():
            if k in held and isinstance(held[k], SympyModule):
                fit.module = held[k]
    metrics = model.distillation_metrics(symbolic, dm, fine_tune_epochs)
    return DistillationResult(chosen, fits, symbolic, metrics)
