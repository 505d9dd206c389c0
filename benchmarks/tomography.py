"""Parallel-beam ray transform: hybridzoo (Joseph, sparse CSR matmul) vs deepinv's ``Tomography``.

Measures, on the CPU, single-threaded (this machine is shared; both sides get the same one thread):
- forward and adjoint throughput, images/s, batch 8, at 128^2 and 256^2 (``NUM_ANGLES`` views over 180°);
- adjoint accuracy of both: |<Ax, y> - <x, A*y>| / |<Ax, y>| with positive random x, y in float32;
- reconstruction time per image of FBP, TV (PDHG) and learned primal-dual (hybridzoo only).

deepinv needs torchvision, so it runs in ``benchmarks/.venv-deepinv`` as a subprocess of this script
(``--peer``), and the JSON it prints is merged. PyPI's torchvision does not import beside the CPU build of
torch 2.13.0 that ours uses (``operator torchvision::nms does not exist``), so that venv holds a torch and
torchvision pair that PyPI built together, and hybridzoo too, so that ours is timed on the peer's torch as
well (``make bench-peers`` creates it; on x86_64 it is a 5.5 GB CUDA build, run on the CPU):

    python3 -m venv benchmarks/.venv-deepinv
    benchmarks/.venv-deepinv/bin/pip install torch==2.14.1 torchvision==0.29.1
    benchmarks/.venv-deepinv/bin/pip install deepinv torch==2.14.1 torchvision==0.29.1
    benchmarks/.venv-deepinv/bin/pip install --no-deps -e .

Both sides' torch versions are recorded (``hybridzoo.torch``, ``deepinv.torch``); when they differ the
script warns and the JSON carries ``torch_version_warning``. ``hybridzoo_same_torch`` then holds ours timed in
the peer's process, on its torch, and ``ratio_forward_adjoint_vs_deepinv_same_torch`` compares the libraries
alone. Without the peer's venv, or when the peer fails, the script exits with status 1 and writes nothing.

    .venv/bin/python benchmarks/tomography.py [--out PATH]   # writes benchmarks/results/tomography.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

SIZES = (128, 256)
BATCH = 8
NUM_ANGLES = 60
REPEATS = 3
HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".venv-deepinv" / "bin" / "python"


def timed(fn, repeats: int = REPEATS) -> float:
    """Median wall time of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dot_test(forward, adjoint, x, y) -> float:
    lhs = (forward(x).double() * y.double()).sum()
    rhs = (x.double() * adjoint(y).double()).sum()
    return float((lhs - rhs).abs() / lhs.abs())


def peer() -> dict:
    """deepinv's numbers (run inside .venv-deepinv)."""
    import deepinv
    from deepinv.physics import Tomography

    out: dict = {"library": f"deepinv {deepinv.__version__}", "torch": torch.__version__, "sizes": {}}
    for n in SIZES:
        angles = torch.arange(NUM_ANGLES) * (180.0 / NUM_ANGLES)
        row = {}
        for exact in (True, False):
            op = Tomography(angles=angles, img_width=n, normalize=False, adjoint_via_backprop=exact)
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(BATCH, 1, n, n, generator=gen)
            y = op.A(x)
            yr = torch.rand(y.shape, generator=gen)
            tf = timed(lambda op=op, x=x: op.A(x))
            ta = timed(lambda op=op, y=yr: op.A_adjoint(y))
            key = "adjoint_via_backprop" if exact else "adjoint_via_iradon"
            row[key] = {
                "forward_images_per_s": BATCH / tf,
                "adjoint_images_per_s": BATCH / ta,
                "forward_adjoint_images_per_s": BATCH / (tf + ta),
                "adjoint_rel_error": dot_test(op.A, op.A_adjoint, x, yr),
                "sinogram_shape": list(y.shape[-2:]),
            }
        out["sizes"][str(n)] = row
    try:  # ours on the same torch build, where hybridzoo is installed beside deepinv
        out["hybridzoo_same_torch"] = ours()
    except ImportError as err:
        out["hybridzoo_same_torch_error"] = str(err)
    return out


def ours() -> dict:
    from hybridzoo.physics.tomography import ParallelBeamGeometry, RayTransform

    out = {"library": "hybridzoo (Joseph, torch sparse CSR)", "torch": torch.__version__, "sizes": {}}
    for n in SIZES:
        t = time.perf_counter()
        op = RayTransform(ParallelBeamGeometry(n, NUM_ANGLES))
        build = time.perf_counter() - t
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(BATCH, n, n, generator=gen)
        y = torch.rand(BATCH, *op.geometry.sinogram_shape, generator=gen)
        tf = timed(lambda op=op, x=x: op(x))
        ta = timed(lambda op=op, y=y: op.adjoint(y))
        out["sizes"][str(n)] = {
            "forward_images_per_s": BATCH / tf,
            "adjoint_images_per_s": BATCH / ta,
            "forward_adjoint_images_per_s": BATCH / (tf + ta),
            "adjoint_rel_error": dot_test(op.forward, op.adjoint, x, y),
            "sinogram_shape": list(op.geometry.sinogram_shape),
            "matrix_build_s": build,
            "nnz": op.nnz,
        }
    return out


def reconstruction_times() -> dict:
    """Seconds per image (batch 8) of FBP, TV and learned primal-dual at the two configs' geometries."""
    from hybridzoo.datamodules.ellipses import EllipsesDataModule
    from hybridzoo.physics.reconstruction import fbp, tv_reconstruction
    from hybridzoo.zoo.registry import load_config

    res = {}
    for name, cfg in (("cpu", "learned-primal-dual-ct"), ("paper", None)):
        if cfg is not None:
            margs = load_config(cfg)["model"]["init_args"]
        else:
            margs = {"image_size": 128, "num_angles": 30, "num_detectors": 182, "width": 32, "n_iter": 10,
                     "tv_iterations": 500, "tv_weight": 2e-4}
        from hybridzoo.zoo.learned_primal_dual import LearnedPrimalDualCT

        model = LearnedPrimalDualCT(**margs).eval()
        dm = EllipsesDataModule(image_size=margs["image_size"], num_angles=margs["num_angles"],
                                num_detectors=margs.get("num_detectors"))
        y = torch.stack([dm.dataset("test")[i]["sinogram"] for i in range(BATCH)])
        its = model.hparams.tv_iterations
        with torch.no_grad():
            res[name] = {
                "image_size": margs["image_size"],
                "fbp_s_per_image": timed(lambda y=y, m=model: fbp(m.op, y), 3) / BATCH,
                f"tv_{its}_iterations_s_per_image": timed(
                    lambda y=y, m=model, k=its: tv_reconstruction(m.op, y, m.hparams.tv_weight, k), 1
                ) / BATCH,
                "lpd_s_per_image": timed(lambda y=y, m=model: m(y), 3) / BATCH,
                "lpd_width": model.hparams.width,
            }
    return res


def main() -> int | None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", action="store_true", help="run the deepinv side and print JSON")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tomography.json",
                        help="output JSON (default: benchmarks/results/tomography.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peer:
        print(json.dumps(peer()))
        return
    if not PEER_PYTHON.exists():
        print(f"{PEER_PYTHON} missing: create it with `make bench-peers` (see the docstring of "
              "benchmarks/tomography.py); nothing written", file=sys.stderr)
        return 1
    result = {"batch": BATCH, "num_angles": NUM_ANGLES, "threads": 1, "device": "cpu",
              "machine": f"{platform.machine()} {platform.processor()}; shared 2-core host, timings noisy",
              "hybridzoo": ours()}
    proc = subprocess.run([str(PEER_PYTHON), __file__, "--peer"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"the deepinv side failed (exit {proc.returncode}); nothing written:\n{proc.stderr[-2000:]}",
              file=sys.stderr)
        return 1
    peer_result = json.loads(proc.stdout.strip().splitlines()[-1])
    same = peer_result.pop("hybridzoo_same_torch", None)
    result["deepinv"] = peer_result
    theirs, mine = peer_result.get("torch"), result["hybridzoo"]["torch"]
    if theirs != mine:
        # different torch builds (e.g. a CUDA wheel's CPU kernels) confound the ratios: see the same-torch ones
        result["torch_version_warning"] = (f"torch differs: hybridzoo {mine}, deepinv {theirs}; "
                                           "hybridzoo_same_torch times ours on deepinv's torch")
        print(f"warning: {result['torch_version_warning']}", file=sys.stderr, flush=True)

    def ratios(ours_side: dict) -> dict:  # ours over deepinv's, per size and adjoint mode
        return {n: {mode: ours_side["sizes"][n]["forward_adjoint_images_per_s"]
                    / row[mode]["forward_adjoint_images_per_s"] for mode in row}
                for n, row in peer_result["sizes"].items()}

    result["ratio_forward_adjoint_vs_deepinv"] = ratios(result["hybridzoo"])
    if same is not None:
        result["hybridzoo_same_torch"] = same
        result["ratio_forward_adjoint_vs_deepinv_same_torch"] = ratios(same)
    result["reconstruction"] = reconstruction_times()
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
