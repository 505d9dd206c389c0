import pytest
from hybridzoo.zoo import create_model, list_models, register
from hybridzoo.zoo.registry import _REGISTRY, config_path, get_entry, load_config, model_class


def test_every_registered_model_resolves():
    for row in list_models():
        name = row["name"]
        assert config_path(name).is_file()
        cfg = load_config(name)
        assert {"model", "data"} <= set(cfg)
        cls = model_class(name)
        assert cls.zoo_name == name or name.startswith(cls.zoo_name or ""), (name, cls.zoo_name)


def test_list_models_reports_cards():
    rows = {r["name"]: r for r in list_models()}
    ude = rows["ude-lotka-volterra"]
    assert "Rackauckas" in ude["paper"]
    if ude["weights"]:
        assert "test/extrap_mse" in ude["metrics"] and "test/extrap_mse_physics" in ude["metrics"]


def test_create_model_applies_overrides():
    m = create_model("ude-lotka-volterra", hidden=8, adam_epochs=3)
    assert m.hparams.hidden == 8 and m.hparams.adam_epochs == 3


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="unknown zoo model 'nope'.*ude-lotka-volterra"):
        get_entry("nope")
    with pytest.raises(TypeError, match="name must be a string"):
        get_entry(3)


def test_register_refuses_duplicates_and_bad_paths():
    with pytest.raises(ValueError, match="already registered"):
        register("ude-lotka-volterra", model="a:B", datamodule="a:C", config="x.yaml", paper="p")
    with pytest.raises(ValueError, match="model must be an import path"):
        register("new-model", model="nocolon", datamodule="a:C", config="x.yaml", paper="p")
    try:
        register("test-only-model", model="a:B", datamodule="a:C", config="x.yaml", paper="p")
        assert get_entry("test-only-model").model == "a:B"
    finally:
        _REGISTRY.pop("test-only-model", None)


def test_a_zoo_datamodule_of_another_model_is_refused_and_ones_own_kept():
    import lightning as L
    from hybridzoo.zoo.registry import check_pairing, create_datamodule

    lpd = create_model("learned-primal-dual-ct")
    small_ns, wake_large = create_model("solver-in-the-loop-ns"), create_datamodule("solver-in-the-loop-ns-large")
    with pytest.raises(ValueError, match="WakeFlowDataModule is the DataModule of zoo model.s. solver-in-the-loop-ns, "
                                         "solver-in-the-loop-ns-large, not of a LearnedPrimalDualCT"):
        check_pairing(lpd, wake_large)
    with pytest.raises(ValueError, match="EllipsesDataModule .*not of a SolverInTheLoop"):
        check_pairing(small_ns, create_datamodule("learned-primal-dual-ct"))
    check_pairing(lpd, create_datamodule("learned-primal-dual-ct"))
    check_pairing(small_ns, wake_large)  # the same model class at another size: its batches fit
    check_pairing(lpd, L.LightningDataModule())  # a DataModule of the user's own is theirs to pair
