import math
import warnings

import numpy as np
import pytest
import torch
from hybridzoo.physics.navier_stokes import NavierStokes2D

F64 = torch.float64


def taylor_green(n: int, nu: float, t_end: float, cfl: float = 0.25, **kw):
    """Max velocity error against u = sin x cos y exp(-2 nu t) on [0, 2 pi]^2 (k = 1)."""
    s = NavierStokes2D(n, n, 2 * math.pi, **kw)
    xu, yu = s.coordinates("u", dtype=F64)
    xv, yv = s.coordinates("v", dtype=F64)
    mode_u, mode_v = torch.sin(xu) * torch.cos(yu), -torch.cos(xv) * torch.sin(yv)
    u, v = mode_u[None].clone(), mode_v[None].clone()
    steps = s.step_count(t_end, cfl * s.h)
    dt = t_end / steps
    p = None
    for _ in range(steps):
        u, v, p = s.step(u, v, dt, nu, p)
    amp = float((u[0] * mode_u).sum() / (mode_u**2).sum())
    exact = math.exp(-2 * nu * t_end)
    err = max(float((u[0] - exact * mode_u).abs().max()), float((v[0] - exact * mode_v).abs().max()))
    return amp, exact, err, s, u, v


def test_taylor_green_decays_at_the_viscous_rate():
    amp, exact, err, s, u, v = taylor_green(32, nu=0.1, t_end=1.0)
    # decay factor exp(-2 nu k^2 t) = 0.819; the scheme's own dissipation at 32^2 stays below 1.5 %
    assert abs(amp - exact) / exact < 0.015
    assert err < 0.01
    assert s.divergence(u, v).abs().max() < 1e-10


def test_taylor_green_converges_with_resolution():
    errs = [taylor_green(n, nu=0.05, t_end=0.5)[2] for n in (16, 32, 64)]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    # operator splitting at fixed CFL is first order overall: each doubling must roughly halve the error
    assert all(o > 0.8 for o in orders), (errs, orders)


def test_maccormack_beats_semi_lagrangian():
    mc = taylor_green(32, nu=0.0, t_end=0.5, advection="maccormack")[2]
    sl = taylor_green(32, nu=0.0, t_end=0.5, advection="semi-lagrangian")[2]
    assert mc < 0.5 * sl


@pytest.mark.parametrize("diffusion", ["explicit", "implicit"])
def test_shear_wave_diffusion(diffusion):
    # u = sin(y), v = 0 is an exact Navier-Stokes solution decaying as exp(-nu t) (advection is zero)
    n, nu, t_end = 24, 1.0, 0.5
    s = NavierStokes2D(n, n, 2 * math.pi, diffusion=diffusion)
    _, yu = s.coordinates("u", dtype=F64)
    u = torch.sin(yu)[None]
    v = torch.zeros(1, *s.v_shape, dtype=F64)
    h = s.h
    dt = 0.2 * h**2 / nu if diffusion == "explicit" else 1.5 * h**2 / nu  # implicit: beyond the explicit limit
    steps = s.step_count(t_end, dt)
    dt = t_end / steps
    for _ in range(steps):
        u, v, _ = s.step(u, v, dt, nu)
    # discrete Laplacian eigenvalue of sin(y) on the grid, exact in time up to O(dt)
    lam = (2 - 2 * math.cos(h)) / h**2
    expected = math.exp(-nu * lam * t_end)
    amp = float((u[0] * torch.sin(yu)).sum() / (torch.sin(yu) ** 2).sum())
    # first-order-in-time error ~ (nu lam)^2 dt t / 2: about 0.002 (explicit) and 0.015 (implicit) here
    assert abs(amp - expected) < (0.004 if diffusion == "explicit" else 0.025)


def channel(nx=24, ny=10, dtype=F64, obstacle=True, seed=0):
    h = 1.0 / ny
    yc = (torch.arange(ny, dtype=F64) + 0.5) * h
    solid = torch.zeros(ny, nx, dtype=torch.bool)
    if obstacle:
        solid[ny // 2 - 1:ny // 2 + 1, nx // 4:nx // 4 + 2] = True
    inflow = 4 * yc * (1 - yc)
    s = NavierStokes2D(nx, ny, nx * h, x_boundary="inflow-outflow", y_boundary="noslip", solid=solid, inflow=inflow)
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(2, *s.u_shape, generator=g, dtype=F64).to(dtype)
    v = 0.3 * torch.randn(2, *s.v_shape, generator=g, dtype=F64).to(dtype)
    return s, u, v


def test_projection_is_divergence_free_at_solver_tolerance():
    s, u, v = channel()
    assert s.divergence(*s.apply_boundaries(u, v)).abs().max() > 1.0  # the raw field is far from solenoidal
    un, vn, p = s.step(u, v, 0.5 * s.h, 1e-3)
    div = s.divergence(un, vn)
    scale = un.abs().max() / s.h
    assert div.abs().max() / scale < 1e-9
    # walls, obstacle faces and inflow hold their boundary values after the projection
    assert vn[:, 0].abs().max() == 0 and vn[:, -1].abs().max() == 0
    torch.testing.assert_close(un[:, :, 0], s.inflow.expand(2, -1))
    assert (un * (1 - s._masks["mu"])).abs().max() == 0


def test_mass_conservation_in_the_channel():
    s, u, v = channel()
    p = None
    for _ in range(5):
        u, v, p = s.step(u, v, 0.5 * s.h, 1e-3, p)
        inflow = u[:, :, 0].sum(-1) * s.h
        outflow = u[:, :, -1].sum(-1) * s.h
        torch.testing.assert_close(outflow, inflow, atol=1e-10, rtol=0)


def test_float32_step_and_batched_viscosity_match_single_runs():
    s, u, v = channel(dtype=torch.float32)
    nu = torch.tensor([1e-3, 1e-2])
    ub, vb, pb = s.step(u, v, 0.5 * s.h, nu)
    for i in range(2):
        ui, vi, pi = s.step(u[i:i + 1], v[i:i + 1], 0.5 * s.h, float(nu[i]))
        torch.testing.assert_close(ub[i:i + 1], ui, atol=2e-5, rtol=0)
    assert ub.dtype == torch.float32 and s.divergence(ub, vb).abs().max() < 1e-2


def test_gradcheck_of_one_step_through_the_pressure_solve():
    s = NavierStokes2D(5, 4, 1.25, x_boundary="inflow-outflow", y_boundary="noslip",
                       solid=torch.tensor([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]).bool(),
                       inflow=torch.tensor([0.2, 0.4, 0.4, 0.2], dtype=F64), pressure_tol=1e-13)
    g = torch.Generator().manual_seed(3)
    u = (0.3 * torch.rand(1, *s.u_shape, generator=g, dtype=F64)).requires_grad_()
    v = (0.1 * torch.randn(1, *s.v_shape, generator=g, dtype=F64)).requires_grad_()

    def f(u, v):
        un, vn, p = s.step(u, v, 0.3, 0.01)
        return un, vn, p

    assert torch.autograd.gradcheck(f, (u, v), atol=1e-6)


def test_checkpointed_rollout_gives_the_same_gradient():
    s, u, v = channel(nx=16, ny=8)
    grads = []
    for ck in (False, True):
        u0 = u.clone().requires_grad_()
        us, vs, _ = s.rollout(u0, v, 0.5 * s.h, 1e-3, steps=3, checkpoint=ck)
        (us[:, -1] ** 2).sum().backward()
        grads.append(u0.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_input_is_rejected_with_the_argument_named():
    s, u, v = channel()
    with pytest.raises(ValueError, match="CFL"):
        s.step(u, v, 5 * s.h, 1e-3)
    with pytest.raises(ValueError, match="nu"):
        s.step(u, v, 0.1 * s.h, -1e-3)
    with pytest.raises(ValueError, match="nu"):
        s.step(u, v, 0.1 * s.h, torch.tensor([1e-3, -1.0], dtype=F64))
    with pytest.raises(ValueError, match="diffusion limit"):
        s.step(u, v, 0.5 * s.h, 1.0)
    with pytest.raises(ValueError, match="^u must have shape"):
        s.step(u[..., :-1], v, 0.1 * s.h, 1e-3)
    with pytest.raises(ValueError, match="batch size"):
        s.step(u, v[:1], 0.1 * s.h, 1e-3)
    bad = v.clone()
    bad[0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="v contains NaN"):
        s.step(u, bad, 0.1 * s.h, 1e-3)
    with pytest.raises(ValueError, match="dt"):
        s.step(u, v, -0.1, 1e-3)
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        s.step(u.numpy(), v, 0.1, 1e-3)
    with pytest.raises(ValueError, match="inflow"):
        NavierStokes2D(8, 4, 1.0, x_boundary="inflow-outflow")
    # the public sub-steps check their dt as step does (NaN/negative back-traced and clamped; 0 read as diverged)
    for sub_step in (lambda dt: s.advect(u, v, dt), lambda dt: s.project(u, v, dt), lambda dt: s.check_cfl(u, v, dt)):
        for dt in (float("nan"), -1.0, 0.0):
            with pytest.raises(ValueError, match="dt must be"):
                sub_step(dt)
    with pytest.raises(ValueError, match="diffusion limit"):  # explicit diffusion past its limit grew 4000x
        s.diffuse(u, v, 0.5 * s.h, 1.0)
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):  # int64 truncated to zeros
        s.coordinates("u", dtype=torch.int64)
    with pytest.raises(TypeError, match="validate must be a bool"):  # "no" was True, None False
        NavierStokes2D(8, 8, 1.0, validate="no")
    with pytest.raises(TypeError, match="checkpoint must be a bool"):
        s.rollout(u, v, 0.1 * s.h, 1e-3, 2, checkpoint="no")
    with pytest.raises(ValueError, match="solid marks every cell"):  # every step returned zeros
        NavierStokes2D(8, 8, 1.0, solid=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="inflow must not require grad"):  # it was detached without a word
        NavierStokes2D(8, 4, 1.0, x_boundary="inflow-outflow", inflow=torch.ones(4, requires_grad=True))
    with pytest.raises(TypeError, match="nu must have a real floating dtype"):
        s.step(u, v, 0.1 * s.h, torch.tensor(1e-3 + 0j))
    with pytest.raises(ValueError, match="solid"):
        NavierStokes2D(8, 4, 1.0, solid=torch.zeros(4, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="y_boundary"):
        NavierStokes2D(8, 4, 1.0, y_boundary="open")
    with pytest.raises(TypeError, match="solid must be a bool tensor"):
        NavierStokes2D(8, 4, 1.0, solid=torch.rand(4, 8))
    for dtype in (torch.float16, torch.bfloat16):  # the FFT failed deep inside with "Unsupported dtype Half"
        with pytest.raises(TypeError, match="u and v must be float32 or float64"):
            NavierStokes2D(8, 8, 1.0).step(torch.zeros(1, 8, 8, dtype=dtype), torch.zeros(1, 8, 8, dtype=dtype),
                                           0.1, 0.01)
    with pytest.raises(ValueError, match="speed must be positive"):
        s.max_stable_dt(0.0)
    with pytest.raises(ValueError, match="nu must be non-negative"):
        s.max_stable_dt(1.0, nu=-0.1)
    with pytest.raises(ValueError, match="dt must be positive"):
        s.step_count(1.0, 0)
    with pytest.raises(ValueError, match="where must be 'u', 'v' or 'p'"):
        s.coordinates("w")


def schaefer_turek_strouhal(ny: int, t_end: float) -> float:
    """Strouhal number of the 2D-2 benchmark (Re = 100) on a uniform grid with ``ny`` cells across."""
    H, D, nu, Um = 0.41, 0.1, 1e-3, 1.5
    h = H / ny
    nx = int(round(2.2 / h))
    yc = (torch.arange(ny, dtype=F64) + 0.5) * h
    xc = (torch.arange(nx, dtype=F64) + 0.5) * h
    Y, X = torch.meshgrid(yc, xc, indexing="ij")
    solid = (X - 0.2) ** 2 + (Y - 0.2) ** 2 <= (D / 2) ** 2
    inflow = 4 * Um * yc * (H - yc) / H**2
    s = NavierStokes2D(nx, ny, nx * h, x_boundary="inflow-outflow", y_boundary="noslip", solid=solid,
                       inflow=inflow, validate=False)
    dt = 0.6 * h / 2.0
    u = torch.zeros(1, *s.u_shape) + inflow.float()[None, :, None]
    v = 0.1 * torch.randn(1, *s.v_shape, generator=torch.Generator().manual_seed(0))  # breaks the symmetry
    u, v = s.apply_boundaries(u, v)
    steps = int(t_end / dt)
    probe = np.empty(steps)
    ip, jp = int(0.45 / h), int(0.2 / h)
    p = None
    with torch.no_grad():
        for k in range(steps):
            u, v, p = s.step(u, v, dt, nu, p)
            probe[k] = float(v[0, jp, ip])
    tail = probe[steps // 2:] - probe[steps // 2:].mean()
    up = np.where((tail[:-1] < 0) & (tail[1:] >= 0))[0]
    # sub-step crossing times by linear interpolation
    tc = (up + tail[up] / (tail[up] - tail[up + 1])) * dt
    period = float(np.diff(tc).mean())
    return D / (period * 1.0)  # mean inflow speed 2 Um / 3 = 1 m/s


@pytest.mark.slow
def test_schaefer_turek_2d2_strouhal_number():
    st = schaefer_turek_strouhal(ny=62, t_end=6.0)
    # published range 0.295-0.305 (Schaefer & Turek 1996); 5 % around 0.30 at 15 cells per diameter
    assert 0.285 <= st <= 0.315, st


def test_a_first_step_under_inference_mode_does_not_poison_autograd():
    # Trainer.test runs under inference_mode; the solver's cached masks must still serve a later training step
    s, u, v = channel(nx=12, ny=6, dtype=torch.float32)
    with torch.inference_mode():
        s.step(u, v, 0.5 * s.h, 1e-3)
    u = u.clone().requires_grad_()
    un, _, _ = s.step(u, v, 0.5 * s.h, 1e-3)
    un.square().sum().backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_solver_built_under_inference_mode_serves_autograd(dtype):
    # in float64 on the CPU, .to() hands the constructor's own masks to the cache, and a constructor run under
    # inference mode (a solver made inside Trainer.test, say) made them inference tensors: "Inference tensors
    # cannot be saved for backward"
    for x_boundary in ("inflow-outflow", "periodic"):
        with torch.inference_mode():
            if x_boundary == "periodic":
                s = NavierStokes2D(12, 12, 1.0)
                u, v = (0.1 * torch.ones(2, *shape, dtype=dtype) for shape in (s.u_shape, s.v_shape))
            else:
                s, u, v = channel(nx=12, ny=6, dtype=dtype)
        u = u.clone().requires_grad_()
        un, _, _ = s.step(u, v.clone(), 0.5 * s.h, 1e-3)
        un.square().sum().backward()
        assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


def test_a_solver_built_under_another_default_device_steps_states_where_they_are():
    # `with torch.device("cuda")` (here "meta", which holds no data) made the constructor's masks on that device,
    # and copying them back to the CPU failed: the solver's own caches are built on the CPU and moved to each
    # state's device when stepped.
    from hybridzoo.datamodules.wake_problem import wake_solver

    args = (24, 12, 6.0, (1.5, 1.5), 1.0, 1.0)
    s = wake_solver(*args)
    g = torch.Generator().manual_seed(0)
    u = 1 + 0.01 * torch.randn(2, *s.u_shape, generator=g, dtype=F64)
    v = 0.01 * torch.randn(2, *s.v_shape, generator=g, dtype=F64)
    expected = s.step(u, v, 0.05, 0.01)
    with torch.device("meta"):
        on_meta = wake_solver(*args)
        for periodic in (NavierStokes2D(12, 12, 1.0), NavierStokes2D(12, 12, 1.0, y_boundary="noslip")):
            assert periodic.coordinates("u")[0].device.type == "cpu"
        got = on_meta.step(u, v, 0.05, 0.01)
    for a, b in zip(got, expected):
        assert a.device.type == "cpu"
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_max_stable_dt_is_accepted_and_just_beyond_it_is_not():
    s, u, v = channel()
    u, v = s.apply_boundaries(u, v)
    speed = float(torch.maximum(u.abs().max(), v.abs().max()))
    dt = s.max_stable_dt(speed, nu=1e-3)
    s.step(u, v, dt, 1e-3)
    with pytest.raises(ValueError, match="CFL"):
        s.step(u, v, 1.01 * dt, 1e-3)


def _obstacle_channel(y_boundary: str = "slip"):
    ny, nx = 6, 10
    solid = torch.zeros(ny, nx, dtype=torch.bool)
    solid[2:4, 4:6] = True
    inflow = torch.linspace(0.5, 1.0, ny, dtype=F64)
    s = NavierStokes2D(nx, ny, 2.0, x_boundary="inflow-outflow", y_boundary=y_boundary, solid=solid, inflow=inflow,
                       diffusion="implicit")
    g = torch.Generator().manual_seed(0)
    u = 1.0 + 0.3 * torch.rand(2, *s.u_shape, generator=g, dtype=F64)
    v = 0.3 * torch.randn(2, *s.v_shape, generator=g, dtype=F64)
    return s, *s.apply_boundaries(u, v)


def _backward_euler(s, q, name, a):
    """Dense backward Euler ``x - a h² lap x = q`` on the free faces, faces that apply_boundaries sets held fixed."""
    probe = 10 + torch.rand(1, *q.shape[1:], dtype=F64)
    u0, v0 = torch.zeros(1, *s.u_shape, dtype=F64), torch.zeros(1, *s.v_shape, dtype=F64)
    pair = (probe, v0) if name == "u" else (u0, probe)
    fixed = (s.apply_boundaries(*pair)[0 if name == "u" else 1] != probe)[0].flatten()
    n = fixed.numel()
    eye = torch.eye(n, dtype=F64).reshape(n, *q.shape[1:])
    m = (eye - a * s.h**2 * s._laplacian(eye, name)).reshape(n, n).T  # m @ x.flatten() = (x - a h² lap x)
    out = []
    for b in q.flatten(1):
        g = torch.where(fixed, b, torch.zeros_like(b))  # q already holds its boundary values
        rhs = (b - m @ g)[~fixed]
        x = g.clone()
        x[~fixed] = torch.linalg.solve(m[~fixed][:, ~fixed], rhs)
        out.append(x.reshape(q.shape[1:]))
    return torch.stack(out)


@pytest.mark.parametrize("y_boundary", ["slip", "noslip"])
def test_implicit_diffusion_holds_walls_obstacle_and_inflow_fixed(y_boundary):
    s, u, v = _obstacle_channel(y_boundary)
    dt, a = 0.05, 2.0
    nu = a * s.h**2 / dt
    ui, vi = s.diffuse(u, v, dt, nu, tol=1e-13)
    # no-slip at the obstacle: its neighbours slow down as backward Euler with those faces held at 0 says
    torch.testing.assert_close(ui, _backward_euler(s, u, "u", a), atol=1e-10, rtol=0)
    torch.testing.assert_close(vi, _backward_euler(s, v, "v", a), atol=1e-10, rtol=0)
    # per-sample viscosities solve each sample's own system
    nus = torch.tensor([nu, 0.1 * nu], dtype=F64)  # (B,), as documented
    ub, _ = s.diffuse(u, v, dt, nus, tol=1e-13)
    torch.testing.assert_close(ub[1:], _backward_euler(s, u[1:], "u", 0.1 * a), atol=1e-10, rtol=0)


def test_diffuse_takes_one_viscosity_per_state_and_checks_it():
    # a (B,) viscosity applies per state, also where B equals nx (it was broadcast along x there)
    s = NavierStokes2D(4, 4, 1.0)
    g = torch.Generator().manual_seed(0)
    u, v = (torch.randn(4, *shape, generator=g, dtype=F64) for shape in (s.u_shape, s.v_shape))
    nus = torch.tensor([0.0, 1e-3, 2e-3, 3e-3], dtype=F64)
    ub, vb = s.diffuse(u, v, 0.1, nus)
    for i in range(4):
        ui, vi = s.diffuse(u[i:i + 1], v[i:i + 1], 0.1, float(nus[i]))
        torch.testing.assert_close(ub[i:i + 1], ui, atol=1e-14, rtol=0)
        torch.testing.assert_close(vb[i:i + 1], vi, atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="nu must be a scalar or have shape"):
        s.diffuse(u[:3], v[:3], 0.1, nus)
    with pytest.raises(ValueError, match="non-negative"):
        s.diffuse(u, v, 0.1, -0.5)
    with pytest.raises(ValueError, match="dt"):
        s.diffuse(u, v, 0.0, 1e-3)


def test_implicit_diffusion_is_backward_euler_at_large_diffusion_numbers():
    n, dt = 24, 0.01
    s = NavierStokes2D(n, n, 2 * math.pi, diffusion="implicit")
    _, yu = s.coordinates("u", dtype=F64)
    for a in (1.5, 50.0, 500.0):
        u = torch.sin(yu)[None].clone()
        un, _, _ = s.step(u, torch.zeros(1, *s.v_shape, dtype=F64), dt, a * s.h**2 / dt)
        amp = float((un[0] * torch.sin(yu)).sum() / (torch.sin(yu) ** 2).sum())
        assert amp == pytest.approx(1 / (1 + a * (2 - 2 * math.cos(s.h))), rel=1e-8), a


def test_implicit_diffusion_warns_once_when_it_stops_short():
    s, u, v = _obstacle_channel()
    nu = 500.0 * s.h**2 / 0.05
    with pytest.warns(RuntimeWarning, match=r"implicit diffusion .*max_iter=2 .*a = nu\*dt/h\^2 = 500"):
        s.diffuse(u, v, 0.05, nu, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.diffuse(u, v, 0.05, nu, max_iter=2)  # once per solver: a rollout does not repeat it every step
        s.diffuse(u, v, 0.05, nu)  # converges within the default cap
    with pytest.raises(ValueError, match="tol"):
        s.diffuse(u, v, 0.05, nu, tol=-1.0)


def test_gradcheck_of_one_implicit_diffusion_step():
    s = NavierStokes2D(5, 4, 1.25, x_boundary="inflow-outflow", y_boundary="noslip",
                       solid=torch.tensor([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]).bool(),
                       inflow=torch.tensor([0.2, 0.4, 0.4, 0.2], dtype=F64), pressure_tol=1e-13, diffusion="implicit")
    g = torch.Generator().manual_seed(3)
    u = (0.3 * torch.rand(1, *s.u_shape, generator=g, dtype=F64)).requires_grad_()
    v = (0.1 * torch.randn(1, *s.v_shape, generator=g, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda u, v: s.step(u, v, 0.3, 0.5), (u, v), atol=1e-6)  # a = 2.4


def test_pressure_settings_are_checked_and_a_short_solve_warns():
    for bad in (-1.0, 0.0, 1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="pressure_tol"):
            NavierStokes2D(8, 4, 1.0, pressure_tol=bad)
    with pytest.raises(TypeError, match="pressure_tol"):
        NavierStokes2D(8, 4, 1.0, pressure_tol="1e-6")
    with pytest.raises(ValueError, match="max_pressure_iter"):
        NavierStokes2D(8, 4, 1.0, max_pressure_iter=0)
    with pytest.raises(TypeError, match="max_pressure_iter"):
        NavierStokes2D(8, 4, 1.0, max_pressure_iter=2.5)
    s, u, v = channel(nx=48, ny=24)  # above DENSE_LIMIT cells: the dense preconditioner converges in 1-2 iterations
    short = NavierStokes2D(s.nx, s.ny, s.length_x, x_boundary="inflow-outflow", y_boundary="noslip", solid=s.solid,
                           inflow=s.inflow, max_pressure_iter=2)
    with pytest.warns(RuntimeWarning, match=r"pressure solve stopped at max_iter=2 .*residual"):
        short.step(u, v, 0.02, 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.step(u, v, 0.02, 1e-3)  # the default settings converge


@pytest.mark.parametrize("validate", [True, False])
def test_an_empty_batch_steps_to_an_empty_batch(validate):
    s = NavierStokes2D(8, 8, 2 * math.pi, validate=validate)
    u, v = torch.zeros(0, *s.u_shape), torch.zeros(0, *s.v_shape)
    u1, v1, p1 = s.step(u, v, 0.1, 0.01)
    assert u1.shape == u.shape and v1.shape == v.shape and p1.shape == (0, 8, 8)
    assert s.cfl(u, v, 0.1) == 0.0


def test_implicit_diffusion_of_an_empty_batch_is_an_empty_batch():
    s = NavierStokes2D(8, 8, 1.0, y_boundary="noslip", diffusion="implicit")
    u, v = torch.zeros(0, *s.u_shape), torch.zeros(0, *s.v_shape)
    ud, vd = s.diffuse(u, v, 0.01, 0.1)  # its CG used to fail on the residual's max over no elements
    assert ud.shape == u.shape and vd.shape == v.shape


def test_a_viscosity_that_requires_grad_steps_without_warnings():
    s = NavierStokes2D(8, 8, 1.0)
    u = v = torch.zeros(2, 8, 8)
    nu = torch.tensor([0.01, 0.02], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when a tensor that requires grad becomes a Python number
        u1, _, _ = s.step(u + 0.1, v, 0.01, nu)
    u1.sum().backward()
    assert nu.grad is not None


@pytest.mark.parametrize(("y_boundary", "profile"), [("noslip", torch.sin), ("slip", torch.cos)])
def test_wall_shear_mode_decays_at_its_discrete_eigenvalue(y_boundary, profile):
    # Between walls at y = 0 and 1, sin(pi y) vanishes at no-slip walls and cos(pi y) has zero shear at slip
    # walls: each is an eigenmode of the discrete Laplacian with the walls' ghost cells, eigenvalue
    # (2 - 2 cos(pi h)) / h^2, and an x-independent shear flow is neither advected nor projected.
    n, nu = 16, 0.05
    s = NavierStokes2D(8, n, 8 / n, y_boundary=y_boundary)
    _, yu = s.coordinates("u", dtype=F64)
    mode = profile(math.pi * yu)
    u, v = mode[None].clone(), torch.zeros(1, *s.v_shape, dtype=F64)
    dt, steps = 0.2 * s.h**2 / nu, 50
    for _ in range(steps):
        u, v, _ = s.step(u, v, dt, nu)
    lam = (2 - 2 * math.cos(math.pi * s.h)) / s.h**2
    amp = float((u[0] * mode).sum() / (mode**2).sum())
    assert amp == pytest.approx((1 - nu * dt * lam) ** steps, rel=1e-10)
    assert float((u[0] - amp * mode).abs().max()) < 1e-12


def test_transverse_velocity_vanishes_on_the_inflow_face():
    # v = 1 everywhere: the inflow face's ghost mirrors it to -1 (v = 0 on the face, the inflow is along x),
    # while the outflow keeps a zero gradient and periodic y adds nothing
    s = NavierStokes2D(8, 6, 8.0, x_boundary="inflow-outflow", y_boundary="periodic", inflow=torch.ones(6, dtype=F64))
    lap = s._laplacian(torch.ones(1, *s.v_shape, dtype=F64), "v")
    torch.testing.assert_close(lap[..., 0], torch.full_like(lap[..., 0], -2 / s.h**2))
    torch.testing.assert_close(lap[..., 1:], torch.zeros_like(lap[..., 1:]))


def test_taylor_green_vorticity_is_second_order_everywhere():
    # u = sin x cos y, v = -cos x sin y has vorticity 2 sin x sin y; on the periodic box the central
    # differences wrap around, so the boundary cells are as accurate as the interior ones
    errors = []
    for n in (32, 64):
        s = NavierStokes2D(n, n, 2 * math.pi)
        (xu, yu), (xv, yv), (xp, yp) = (s.coordinates(w, dtype=F64) for w in ("u", "v", "p"))
        u, v = (torch.sin(xu) * torch.cos(yu))[None], (-torch.cos(xv) * torch.sin(yv))[None]
        err = (s.vorticity(u, v)[0] - 2 * torch.sin(xp) * torch.sin(yp)).abs()
        assert float(err.max()) < 1.5 * float(err[2:-2, 2:-2].max())  # no edge effect
        errors.append(float(err.max()))
    assert math.log2(errors[0] / errors[1]) > 1.9, errors


def test_max_stable_dt_has_the_viscous_limit_where_diffusion_dominates():
    s = NavierStokes2D(16, 16, 1.0)
    u, v = torch.full((1, *s.u_shape), 1e-3, dtype=F64), torch.zeros(1, *s.v_shape, dtype=F64)
    dt = s.max_stable_dt(1e-3, nu=1.0)
    # explicit (FTCS) diffusion in 2-D is stable for nu dt / h^2 <= 1/4; the advective limit is ~10^5 times larger
    assert dt == pytest.approx(0.25 * s.h**2 / 1.0, rel=1e-12)
    s.step(u, v, dt, 1.0)
    with pytest.raises(ValueError, match="diffusion"):
        s.step(u, v, 1.01 * dt, 1.0)
