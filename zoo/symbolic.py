"""A sympy expression as a torch module whose numeric constants are trainable parameters."""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch
from torch import nn


class SympyModule(nn.Module):
    """Evaluate a sympy expression of named inputs on tensors, with its constants as parameters.

    The module takes ``inputs (..., len(input_names))`` and returns ``(...)``. Every floating-point
    constant of the expression becomes an entry of ``self.constants``, so the distilled formula can be
    fine-tuned with the Trainer like any network. Integer exponents stay fixed.

    Args:
        expression: a sympy expression, or a string sympy can parse.
        input_names: names of the input columns, in order (e.g. ``["x", "y"]``).
    """

    def __init__(self, expression: sympy.Expr | str, input_names: Sequence[str]) -> None:
        super().__init__()
        expr = sympy.sympify(expression) if isinstance(expression, str) else expression
        self.input_names = list(input_names)
        self._inputs = sympy.symbols(self.input_names)
        unknown = expr.free_symbols - set(self._inputs)
        if unknown:
            names = sorted(map(str, unknown))
            raise ValueError(f"expression uses {names}, not among input_names {self.input_names}")
        floats = sorted(expr.atoms(sympy.Float), key=lambda f: (abs(float(f)), float(f)))
        self._consts = sympy.symbols(f"c0:{len(floats)}") if floats else ()
        self._template = expr.xreplace(dict(zip(floats, self._consts)))
        self.constants = nn.Parameter(torch.tensor([float(f) for f in floats], dtype=torch.get_default_dtype()))
        self._fn = sympy.lambdify([*self._inputs, *self._consts], self._template, modules="torch")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if inputs.shape[-1] != len(self.input_names):
            n = len(self.input_names)
            raise ValueError(f"inputs must have last dimension {n}, got shape {tuple(inputs.shape)}")
        out = self._fn(*inputs.unbind(-1), *self.constants.to(inputs.dtype).unbind())
        if not isinstance(out, torch.Tensor):  # a constant expression
            out = torch.as_tensor(out, dtype=inputs.dtype, device=inputs.device)
        return out.expand(inputs.shape[:-1]) if out.shape != inputs.shape[:-1] else out

    def expression(self, digits: int = 6) -> sympy.Expr:
        """The expression with the current constant values."""
        values = [sympy.Float(float(c), digits) for c in self.constants.detach().cpu()]
        return self._template.xreplace(dict(zip(self._consts, values)))

    def extra_repr(self) -> str:  # noqa: D102
        return str(self.expression(4))
