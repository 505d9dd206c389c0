"""The compiled boundary-layer kernel against the torch march it must reproduce, and when it is used."""

import os
import subprocess
import sys

import pytest
import torch
from hybridzoo.physics import native
from hybridzoo.physics.aerofoil_boundary_layer import aerofoil_boundary_layer
from hybridzoo.physics.airfoil import naca4_from_code, normalize, repanel
from hybridzoo.physics.boundary_layer import SurfaceLayer, _march_torch, march
from hybridzoo.physics.boundary_layer_native import march_native
from hybridzoo.physics.panel import hess_smith
from torch.autograd import forward_ad

F64 = torch.float64
EVENTS = ("transition", "laminar_separation", "turbulent_separation")


@pytest.fixture(autouse=True)
def _kernel(monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_NATIVE", "1")
    try:
        native.build("boundary_layer_march")
    except native.NativeUnavailable as err:
        pytest.skip(f"the compiled kernel cannot be built here: {err}")


def surfaces(dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic surfaces that take every branch of the march, and their ``re`` and ``trip`` ``(M,)``."""
    g = torch.Generator().manual_seed(0)
    m, p = 400, 90
    s = torch.linspace(2e-3, 1.0, p, dtype=F64).repeat(m, 1)
    # edge speeds: a rise to a random peak, then a random adverse gradient, with random wiggles
    peak = 0.05 + 0.5 * torch.rand(m, 1, generator=g, dtype=F64)
    fall = 0.2 + 1.2 * torch.rand(m, 1, generator=g, dtype=F64)
    ue = torch.where(s < peak, 1.0 + 0.6 * s / peak, 1.6 - fall * (s - peak))
    ue = ue * (1 + 0.02 * torch.randn(m, p, generator=g, dtype=F64)).clamp_min(0.5)
    ue[:, 0] = ue[:, 1] * s[:, 0] / s[:, 1]  # stagnation-like start
    # sharp jumps (split into sub-steps) on a quarter of the surfaces, up and down
    jump = torch.randint(20, p - 1, (m,), generator=g)
    factor = torch.where(torch.rand(m, generator=g) < 0.5, 1.6, 0.6).to(F64)
    rows = torch.arange(m) % 4 == 0
    ue[rows] = torch.where(torch.arange(p) >= jump[rows, None], ue[rows] * factor[rows, None], ue[rows])
    # padding: a repeated last station on a third of the surfaces
    pad = torch.arange(m) % 3 == 0
    s[pad, -10:], ue[pad, -10:] = s[pad, -11:-10], ue[pad, -11:-10]
    # a repeated station mid-surface whose speed jumps (ds = 0: no step, no sub-steps), on every 7th surface
    rep = torch.arange(m) % 7 == 3
    s[rep, 50] = s[rep, 49]
    ue[rep, 50:] = ue[rep, 50:] * 1.5
    # a jump past the 64 sub-steps' cap (e^6.4) on every 11th surface
    huge = torch.arange(m) % 11 == 5
    ue[huge, 60:] = ue[huge, 60:] * 2000.0
    ue = ue.clamp_min(0.05)
    re = 10 ** (5 + 2 * torch.rand(m, generator=g, dtype=F64))
    trip = torch.where(torch.rand(m, generator=g) < 0.3, 0.1, 2.0).to(F64)  # 2.0: past the end, never
    trip[torch.arange(m) % 13 == 6] = s[0, 20]  # exactly at a station: s >= trip transitions there
    # accelerating flow at low Re, untripped: laminar to the end
    calm = torch.arange(m) % 5 == 1
    ue[calm], re[calm], trip[calm] = 1 + s[calm], 2e4, 2.0
    return ue.to(dtype), s.to(dtype), re.to(dtype), trip.to(dtype)


def assert_same(fused, reference, rtol: float) -> None:
    for name in EVENTS:
        assert torch.equal(getattr(fused, name), getattr(reference, name)), name
    torch.testing.assert_close(fused.theta, reference.theta, rtol=rtol, atol=0)
    torch.testing.assert_close(fused.shape_factor, reference.shape_factor, rtol=rtol, atol=0)


def test_synthetic_surfaces_take_every_branch_and_agree_with_torch():
    ue, s, re, trip = surfaces()
    reference = _march_torch(ue, s, re, trip)
    # the case covers laminar and Michel transition, the trip, both separations and no transition at all
    assert (reference.transition == -1).any() and (reference.transition >= 0).any()
    assert (reference.laminar_separation >= 0).any()
    assert ((reference.transition >= 0) & (reference.laminar_separation == -1)).any()
    assert (reference.turbulent_separation >= 0).any()
    fused = march_native(ue, s, re, trip)
    assert fused is not None
    assert_same(SurfaceLayer(*fused), reference, rtol=1e-10)
    assert_same(march(ue, s, re, trip), reference, rtol=1e-10)  # march dispatches to it
    # no trip, scalar Re
    assert_same(march(ue, s, 1e6), _march_torch(ue, s, torch.full_like(re, 1e6), None), rtol=1e-10)


def test_aerofoils_agree_with_torch_in_float64_and_float32(monkeypatch):
    shapes = torch.stack([normalize(repanel(naca4_from_code(c, 100).double(), 60)) for c in ("0012", "2412", "4415")])
    alpha = torch.deg2rad(torch.linspace(-6, 14, 11, dtype=F64)).repeat(3, 1)
    re = 10 ** torch.linspace(5, 7, 11, dtype=F64).repeat(3, 1)
    for dtype, rtol, atol in ((F64, 1e-10, 1e-12), (torch.float32, 2e-3, 1e-4)):
        sol = hess_smith(shapes.to(dtype), alpha.to(dtype))
        fused = aerofoil_boundary_layer(sol, re.to(dtype)).features()
        monkeypatch.setenv("HYBRIDZOO_NATIVE", "0")
        reference = aerofoil_boundary_layer(sol, re.to(dtype)).features()
        monkeypatch.setenv("HYBRIDZOO_NATIVE", "1")
        torch.testing.assert_close(fused, reference, rtol=rtol, atol=atol)


def test_the_kernel_serves_only_what_it_can():
    ue, s, re, trip = (t[:8] for t in surfaces())
    assert march_native(ue, s, re, trip) is not None
    assert march_native(ue.float(), s.float(), re.float(), None) is not None
    # a gradient wanted: the torch version, which has one
    grad_ue = ue.clone().requires_grad_()
    assert march_native(grad_ue, s, re, trip) is None
    with torch.no_grad():
        assert march_native(grad_ue, s, re, trip) is not None
    layer = march(grad_ue, s, re, trip)
    assert layer.theta.requires_grad
    # forward mode and torch.func transforms: the torch version, with its derivatives
    tangent = torch.ones_like(ue)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(ue, tangent)
        assert march_native(dual, s, re, trip) is None
        fwd = forward_ad.unpack_dual(march(dual, s, re, trip).theta).tangent
    _, jvp = torch.func.jvp(lambda u: march(u, s, re, trip).theta, (ue,), (tangent,))
    assert fwd is not None and torch.isfinite(fwd).all() and fwd.abs().max() > 0
    torch.testing.assert_close(jvp, fwd)
    # not finite: the torch version carries the NaN through (the kernel assumes finite math)
    assert march_native(ue.index_fill(1, torch.tensor([5]), float("nan")), s, re, trip) is None
    # mixed dtypes: the kernel would read one as the other
    assert march_native(ue.float(), s.float(), re, None) is None
    # dtypes the kernel has no version for
    assert march_native(ue.bfloat16(), s.bfloat16(), re.bfloat16(), None) is None
    # off
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRIDZOO_NATIVE", "0")
        assert march_native(ue, s, re, trip) is None


def test_lazily_negated_inputs_are_read_as_their_values():
    # A negative view keeps the stored (negated) numbers in memory and flips them when read.
    ue, s, re, trip = (t[:16] for t in surfaces())
    neg_view = (1j * (-re).to(torch.complex128)).conj().imag  # logically re
    assert neg_view.is_neg() and torch.equal(neg_view, re)
    assert_same(SurfaceLayer(*march_native(ue, s, neg_view, trip)), _march_torch(ue, s, re, trip), rtol=1e-10)


def test_the_kernel_writes_on_its_inputs_device_not_the_default_one():
    # Under `with torch.device("cuda")` (here: "meta") the kernel's output buffers were made on the default
    # device and it wrote through their pointers: a segmentation fault. A subprocess, so a regression fails this
    # test instead of killing the run.
    code = (
        "import torch\n"
        "from hybridzoo.physics.boundary_layer import march\n"
        "s = torch.linspace(1e-3, 1.0, 50, dtype=torch.float64).repeat(3, 1)\n"
        "ue = 1 + s\n"
        "free = march(ue, s, 1e6)\n"
        "with torch.device('meta'):\n"
        "    layer = march(ue, s, 1e6)\n"
        "assert layer.theta.device.type == 'cpu'\n"
        "torch.testing.assert_close(layer.theta, free.theta, rtol=0, atol=0)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HYBRIDZOO_NATIVE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


def test_no_surfaces():
    ue, s, re, trip = (t[:0] for t in surfaces())
    layer = march(ue, s, re, trip)
    assert layer.theta.shape == (0, s.shape[1]) and layer.transition.shape == (0,)
