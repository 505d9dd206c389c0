import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"


def test_unknown_benchmark_name_fails_and_lists_the_valid_names():
    # before, a misspelt name ran nothing and exited 0, as if the benchmarks had passed
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), "rknet_seed"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "unknown benchmark(s): rknet_seed" in proc.stderr
    assert "rknet_seeds" in proc.stderr and "run_all" not in proc.stderr.split("valid names:")[1]
    assert "==" not in proc.stdout  # nothing ran
