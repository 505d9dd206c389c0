import numpy as np
import pytest
import torch
from hybridzoo.datamodules import aerofoil_features as af
from hybridzoo.datamodules import xfoil
from hybridzoo.datamodules.aerofoil import AerofoilDataModule, load_arrays, shipped_path, split_foils
from hybridzoo.physics.airfoil import check_airfoil
from hybridzoo.physics.boundary_layer import aerofoil_boundary_layer
from hybridzoo.physics.panel import hess_smith


@pytest.fixture(scope="module")
def shipped():
    dm = AerofoilDataModule(source="shipped", n_panels_per_side=40)
    dm.setup()
    return dm


def test_shipped_data_set_is_sound(shipped):
    a = load_arrays(shipped_path())
    n_foils = len(a["names"])
    assert n_foils >= 100 and len(set(a["names"].tolist())) == n_foils
    check_airfoil(torch.from_numpy(a["coords"]).double(), max_te_gap=0.02)
    assert set(np.unique(a["foil"])) == set(range(n_foils))
    assert len(np.unique(a["re"])) >= 2 and len(np.unique(a["alpha_deg"])) >= 8
    missing = np.isnan(a["cl"])
    assert shipped.describe()["n_missing"] == int(missing.sum())
    assert missing.mean() < 0.3  # non-converged points are recorded, but they must stay a minority
    ok = a["cl"][~missing]
    assert np.all(np.abs(ok) < 2.5)


def test_split_is_by_aerofoil(shipped):
    foils = {k: set(d.tensors[3].tolist()) for k, d in shipped.datasets.items()}
    assert (
        not (foils["train"] & foils["test"])
        and not (foils["train"] & foils["val"])
        and not (foils["val"] & foils["test"])
    )
    for d in shipped.datasets.values():
        assert not torch.isnan(d.tensors[2]).any()
    x = shipped.datasets["train"].tensors[0]
    assert x.shape[1] == af.N_FEATURES
    small = AerofoilDataModule(source="shipped", n_train_foils=10, n_panels_per_side=40)
    small.setup()
    assert len(set(small.datasets["train"].tensors[3].tolist())) == 10
    assert set(small.datasets["test"].tensors[3].tolist()) == foils["test"]
    tr, va, te = split_foils(100, 0.1, 0.2, 0)
    assert len(te) == 20 and len(va) == 10 and len(set(tr) | set(va) | set(te)) == 100


def test_panel_column_matches_the_panel_method(shipped):
    x, cl_panel, cl, foil = shipped.datasets["test"].tensors
    f = int(foil[0])
    rows = foil == f
    direct = hess_smith(shipped.coords[f].double(), x[rows, af.ALPHA].double()).cl
    torch.testing.assert_close(cl_panel[rows].double(), direct, rtol=1e-4, atol=1e-4)
    # the panel method over-predicts the viscous lift on average, which is what the model corrects
    assert (cl_panel - cl).mean() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="test_fraction"):
        AerofoilDataModule(test_fraction=0.7)
    with pytest.raises(ValueError, match="n_train_foils"):
        AerofoilDataModule(n_train_foils=0)
    with pytest.raises(ValueError, match="workers"):
        AerofoilDataModule(workers=64)
    with pytest.raises(ValueError, match="source"):
        AerofoilDataModule(source="/no/such/file.npz").setup()
    with pytest.raises(ValueError, match="n_train_foils"):
        AerofoilDataModule(n_train_foils=100000, n_panels_per_side=40).setup()


def test_build_is_cached_resumable_and_records_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    calls = []

    def fake_polar(coords, re, alphas, timeout=60.0):  # stands in for XFOIL: checks the bookkeeping only
        calls.append(re)
        a = np.asarray(alphas)
        cl = 0.1 * a
        cl[a > 4] = np.nan  # a non-converged point
        return xfoil.Polar(a, cl, 0 * cl + 0.01, 0 * cl, np.isfinite(cl), re)

    monkeypatch.setattr(xfoil, "run_polar", fake_polar)
    kw = dict(n_uiuc=0, naca=("0012", "2412", "4415"), reynolds=(1e5, 1e6), alphas=(0.0, 5.0), workers=1)
    dm = AerofoilDataModule(source="cache", **kw)
    path = dm.build()
    assert path.exists() and len(calls) == 6
    a = load_arrays(path)
    assert a["cl"].shape == (12,) and int(np.isnan(a["cl"]).sum()) == 6
    assert dm.build() == path and len(calls) == 6  # cached
    dm.build(force=True)  # rebuilt from the finished polars on disk: XFOIL is not rerun
    assert len(calls) == 6
    out = dm.build(out=tmp_path / "copy.npz")
    np.testing.assert_array_equal(load_arrays(out)["cl"], a["cl"])


@pytest.mark.skipif(not xfoil.xfoil_available(), reason="xfoil and xvfb-run are not installed")
def test_tiny_real_build(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    dm = AerofoilDataModule(
        source="cache", n_uiuc=0, naca=("2412",), reynolds=(1e6,), alphas=(0.0, 5.0), workers=1
    )
    a = load_arrays(dm.build())
    np.testing.assert_allclose(a["cl"], [0.24, 0.81], atol=0.01)


def test_input_columns_are_the_shape_the_flow_and_the_boundary_layer(shipped):
    x, cl_panel, _, foil = shipped.datasets["test"].tensors
    rows = (foil == int(foil[0])).nonzero().squeeze(-1)[:4]
    coords = shipped.coords[int(foil[0])].double()[None]
    alpha, re = x[rows, af.ALPHA].double()[None], (10 ** x[rows, af.LOG_RE].double())[None]
    got, panel = af.aerofoil_inputs(coords, alpha, re)
    torch.testing.assert_close(got[0].float(), x[rows], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(panel[0].float(), cl_panel[rows], rtol=1e-4, atol=1e-4)
    layer = aerofoil_boundary_layer(hess_smith(coords, alpha), re).features()
    torch.testing.assert_close(got[..., af.N_PROBLEM :], layer)
    assert got.shape[-1] == af.N_FEATURES == af.N_PROBLEM + 11
    with pytest.raises(ValueError, match="alpha"):
        af.aerofoil_inputs(coords, alpha, re[:, :2])
    with pytest.raises(ValueError, match="re"):
        af.aerofoil_inputs(coords, alpha, -re)
