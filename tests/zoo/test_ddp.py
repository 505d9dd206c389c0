import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_ddp_on_cpu(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("ddp_worker.py")), str(out),
                           str(tmp_path / "cache")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    assert result["params_equal_across_ranks"]  # gradients were all-reduced
    assert result["last_loss"] < result["first_loss"]
