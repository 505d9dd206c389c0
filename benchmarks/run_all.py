"""Run every benchmark script in this folder; each writes benchmarks/results/<name>.json.

    python benchmarks/run_all.py [NAME ...]     (default: all)

An unknown NAME runs nothing: the valid names are printed and the exit status is 2.
Scripts run without arguments, so each script's defaults must reproduce its committed results file
(e.g. ``rknet_seeds.py`` defaults to the five seeds ``results/rknet_seeds.json`` holds).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py"}


def benchmark_scripts() -> list[Path]:
    """The benchmark scripts in this folder, by name (helpers starting with ``_`` are not benchmarks)."""
    return sorted(p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks named in ``argv`` (default ``sys.argv[1:]``; none: all); return the exit status."""
    wanted = set(sys.argv[1:] if argv is None else argv)
    scripts = benchmark_scripts()
    if wanted & {"-h", "--help"}:
        print(f"{__doc__}\nbenchmarks: {', '.join(p.stem for p in scripts)}")
        return 0
    unknown = sorted(wanted - {p.stem for p in scripts})
    if unknown:
        # a misspelt name would otherwise run nothing and report success
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; valid names: {', '.join(p.stem for p in scripts)}",
            file=sys.stderr,
        )
        return 2
    failed = []
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
