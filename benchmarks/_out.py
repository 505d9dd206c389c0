"""The ``--out`` check shared by the benchmark scripts: never replace a file a user had.

A results file of the same benchmark (a JSON object holding the benchmark's marker key) is replaced, as
rerunning a benchmark should; anything else at ``--out`` (another file, a folder) is refused before any
measurement, unless ``--replace`` says to discard it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def check_out(error: Callable[[str], object], out: Path, marker: str, replace: bool = False) -> None:
    """Call ``error`` (an ``ArgumentParser.error``) if ``out`` is a folder, or an existing file that is not a
    results file holding the key ``marker`` and ``replace`` is false."""
    if out.is_dir():
        error(f"--out {out} is a folder; give the path of a .json file")
    if not out.exists() or replace:
        return
    try:
        data = json.loads(out.read_text())
        ours = isinstance(data, dict) and marker in data
    except (ValueError, TypeError, OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        error(f"--out {out} exists and is not a results file of this benchmark: pass --replace to overwrite it, "
              "or give another path")
