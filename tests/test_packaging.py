import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_subpackages_configs_and_checkpoints(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = next(tmp_path.glob("hybridzoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top <= {"hybridzoo", *(n.split("/")[0] for n in names if ".dist-info" in n)}, top
    for required in ("hybridzoo/physics/integrators.py", "hybridzoo/datamodules/lotka_volterra.py",
                     "hybridzoo/zoo/cli.py", "hybridzoo/configs/ude_lotka_volterra.yaml",
                     "hybridzoo/checkpoints/ude-lotka-volterra.json",
                     "hybridzoo/checkpoints/ude-lotka-volterra.safetensors",
                     "hybridzoo/datamodules/data/residual_aerofoil.npz",
                     "hybridzoo/physics/boundary_layer_march.cpp"):  # the kernel's source, compiled on first use
        assert required in names, required
    configs = {Path(p).name for p in (ROOT / "configs").glob("*.yaml")}
    assert configs <= {Path(n).name for n in names if n.startswith("hybridzoo/configs/")}
    cards = {Path(p).name for pattern in ("*.json", "*.safetensors") for p in (ROOT / "checkpoints").glob(pattern)}
    assert cards <= {Path(n).name for n in names if n.startswith("hybridzoo/checkpoints/")}
    assert any(n.endswith("entry_points.txt") for n in names)
