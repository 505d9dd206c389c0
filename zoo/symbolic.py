"""A sympy expression as a torch module whose numeric constants are trainable parameters."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sympy
import torch
from torch import nn


def parse_expression(text: str, input_names: Sequence[str]) -> sympy.Expr:
    """``sympy.sympify(text)`` with every input name read as a plain symbol.

    Without this, names that sympy knows (``gamma``, ``beta``, ``S``, ``I``, ``E``, ``N``, ...) would be
    read as its functions and constants.
    """
    return sympy.sympify(text, locals={name: sympy.Symbol(name) for name in input_names})


def _parametrise(
    expr: sympy.Expr, input_names: Sequence[str]
) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...], list[sympy.Float]]:
    """Replace every occurrence of a float in ``expr`` by its own symbol ``c0, c1, ...`` (in tree order).

    Equal values that occur twice (``0.5*x + 0.5*y``) get two symbols, so that they train apart.
    Returns the template, its constant symbols and their values.
    """
    prefix = "c"
    while any(re.fullmatch(rf"{re.escape(prefix)}\d+", n) for n in input_names):  # keep clear of the inputs
        prefix = "_" + prefix
    consts: list[sympy.Symbol] = []
    values: list[sympy.Float] = []

    def walk(e: sympy.Basic) -> sympy.Basic:
        if isinstance(e, sympy.Float):
            consts.append(sympy.Symbol(f"{prefix}{len(consts)}"))
            values.append(e)
            return consts[-1]
        if not e.args:
            return e
        args = [walk(a) for a in e.args]
        return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e

    return walk(expr), tuple(consts), values


class SympyModule(nn.Module):
    """Evaluate a sympy expression of named inputs on tensors, with its constants as parameters.

    The module takes ``inputs (..., len(input_names))`` and returns ``(...)``. Every occurrence of a
    floating-point constant in the expression becomes an entry of ``self.constants`` (equal values
    apart), so the distilled formula can be fine-tuned with the Trainer like any network. Integer
    exponents stay fixed.

    Args:
        expression: a sympy expression, or a string sympy can parse (input names are read as symbols).
        input_names: names of the input columns, in order (e.g. ``["x", "y"]``).
    """

    def __init__(self, expression: sympy.Expr | str, input_names: Sequence[str]) -> None:
        super().__init__()
        self.input_names = list(input_names)
        expr = parse_expression(expression, self.input_names) if isinstance(expression, str) else expression
        self._inputs = [sympy.Symbol(n) for n in self.input_names]
        unknown = expr.free_symbols - set(self._inputs)
        if unknown:
            names = sorted(map(str, unknown))
            raise ValueError(f"expression uses {names}, not among input_names {self.input_names}")
        self._template, self._consts, floats = _parametrise(expr, self.input_names)
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
