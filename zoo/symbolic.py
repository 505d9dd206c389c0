"""A sympy expression as a torch module whose numeric constants are trainable parameters."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sympy
import torch
from torch import nn


def check_input_names(input_names: object, n_columns: int | None = None) -> list[str]:
    """``input_names`` as a list of distinct strings; ``TypeError``/``ValueError`` naming it otherwise.

    Args:
        input_names: a sequence of names (not a single string, which would read as its characters).
        n_columns: the number of input columns they name, if known.
    """
    if isinstance(input_names, (str, bytes)) or not isinstance(input_names, Sequence):
        raise TypeError(f"input_names must be a list of strings, got {type(input_names).__name__} {input_names!r}")
    names = list(input_names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"input_names must be a list of strings, got {bad[0]!r} ({type(bad[0]).__name__}) in it")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"input_names must be distinct, got {repeated} more than once in {names}")
    if n_columns is not None and len(names) != n_columns:
        raise ValueError(f"input_names must name each of the {n_columns} input columns, got {len(names)}: {names}")
    return names


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
        input_names: names of the input columns, in order (e.g. ``["x", "y"]``), distinct.
        dtype: floating dtype of the constants (default: torch's default dtype, as for any module's
            parameters). They are rounded to it once, here: a module meant to run in float64 must be made
            with ``dtype=torch.float64``, as ``.double()`` cannot restore digits already lost.
        device: device of the constants.
    """

    def __init__(self, expression: sympy.Expr | str, input_names: Sequence[str], *,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.input_names = check_input_names(input_names)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        expr = parse_expression(expression, self.input_names) if isinstance(expression, str) else expression
        self._inputs = [sympy.Symbol(n) for n in self.input_names]
        unknown = expr.free_symbols - set(self._inputs)
        if unknown:
            names = sorted(map(str, unknown))
            raise ValueError(f"expression uses {names}, not among input_names {self.input_names}")
        self._template, self._consts, floats = _parametrise(expr, self.input_names)
        # sympy Floats -> Python floats (float64) -> dtype: a single rounding, to the dtype asked for
        self.constants = nn.Parameter(torch.tensor([float(f) for f in floats], dtype=dtype, device=device))
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
