"""Values of command-line overrides (``--data k=v``, ``--model k=v``): numbers as Python reads them, else YAML."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence


def _value(text: str) -> object:
    """An override's value: a Python int or float where ``int()``/``float()`` read one, else YAML.

    YAML 1.1 (PyYAML) reads ``1e-3`` as a string and ``1:00:00:00`` as a base-60 integer; here the first
    is the float 0.001, inside lists and mappings too (``reynolds=[2e5, 1e6]``), and the second stays the
    string (Lightning's ``max_time`` takes ``DD:HH:MM:SS``). Lists, mappings, booleans and ``null`` are read
    as YAML.
    """
    import yaml

    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    value = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: no arbitrary objects
    if isinstance(value, (int, float)) and not isinstance(value, bool) and ":" in text:
        return text  # YAML 1.1 sexagesimal (base 60), e.g. a time: keep the string
    return value


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's SafeLoader that also reads ``1e6`` and ``-2E-3`` (no decimal point) as floats, as YAML 1.2 does."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    exponent = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+.0123456789"))
    return Loader


def _kv(pairs: Sequence[str] | None, what: str) -> dict:
    """``["k=v", ...]`` → ``{k: _value(v)}``; a key given twice is an error, since one of the values would be lost."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"hybridzoo: {what} overrides must be KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        if k in out:
            raise SystemExit(f"hybridzoo: {what} sets {k!r} twice ({out[k]!r} and {v!r})")
        out[k] = _value(v)
    return out
