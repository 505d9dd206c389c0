import hashlib
import http.server
import json
import threading
import warnings
from functools import partial

import pytest
import torch
from hybridzoo.zoo import create_model, load_pretrained, save_pretrained
from hybridzoo.zoo.hub import CheckpointError, read_card, resolve_card


def _small():
    return create_model("ude-lotka-volterra", hidden=8, adam_epochs=1, lbfgs_epochs=0)


def _outputs(model):
    state = torch.tensor([[1.0, 2.0], [5.0, 3.0]])
    with torch.no_grad():
        return model.vector_field(state)


def test_save_load_round_trip(tmp_path):
    m = _small()
    card_path = save_pretrained(m, tmp_path, metrics={"test/x": 1.5}, data={"noise": 0.0}, seed=1, epochs=2)
    card = read_card(card_path)
    assert {"name", "paper", "weights", "sha256", "metrics", "data", "train_command", "seed", "epochs",
            "wall_time_s", "hardware", "versions"} <= set(card)
    assert card["sha256"] == hashlib.sha256((tmp_path / card["weights"]).read_bytes()).hexdigest()
    loaded = load_pretrained(card_path)
    torch.testing.assert_close(_outputs(loaded), _outputs(m))
    assert loaded.card["metrics"] == {"test/x": 1.5}
    # the weights path works as well as the card path
    torch.testing.assert_close(_outputs(load_pretrained(tmp_path / card["weights"])), _outputs(m))


def test_weights_file_is_not_a_pickle(tmp_path):
    card = read_card(save_pretrained(_small(), tmp_path))
    head = (tmp_path / card["weights"]).read_bytes()[:2]
    assert head != b"\x80\x04" and head[:1] != b"PK"  # neither a raw pickle nor a torch.save zip


def test_sha_mismatch_is_refused(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_pretrained(card_path)


def test_corrupt_weights_are_refused(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    garbage = b"not safetensors at all"
    (tmp_path / card["weights"]).write_bytes(garbage)
    card["sha256"] = hashlib.sha256(garbage).hexdigest()
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pretrained(card_path)


def test_version_mismatch_warns(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    card["versions"]["hybridzoo"] = "0.0.1"
    card_path.write_text(json.dumps(card))
    with pytest.warns(UserWarning, match="saved with hybridzoo 0.0.1"):
        load_pretrained(card_path)


def test_existing_files_are_not_overwritten(tmp_path):
    save_pretrained(_small(), tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pretrained(_small(), tmp_path)
    save_pretrained(_small(), tmp_path, overwrite=True)


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError, match="unknown checkpoint 'no-such-model'"):
        load_pretrained("no-such-model")
    with pytest.raises(CheckpointError, match="no model card"):
        w = tmp_path / "orphan.safetensors"
        w.write_bytes(b"x")
        resolve_card(w)


def test_architecture_mismatch_is_a_clear_error(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    big = create_model("ude-lotka-volterra", hidden=16, pretrained=str(card_path))
    with pytest.raises(ValueError, match="does not fit this model"):
        big.setup("fit")


def test_download_from_loopback_server(tmp_path):
    www = tmp_path / "www"
    card_path = save_pretrained(_small(), www)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{card_path.name}"
        model = load_pretrained(url, cache=str(tmp_path / "cache"))
        torch.testing.assert_close(_outputs(model), _outputs(load_pretrained(card_path)))
        assert (tmp_path / "cache" / "ude-lotka-volterra.safetensors").is_file()
        # a tampered server file is refused
        (tmp_path / "cache" / "ude-lotka-volterra.safetensors").unlink()
        (www / "ude-lotka-volterra.safetensors").write_bytes(b"evil")
        with pytest.raises(ValueError, match="checksum mismatch"):
            load_pretrained(url, cache=str(tmp_path / "cache2"))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_shipped_checkpoints_verify():
    from hybridzoo.zoo.registry import list_models

    shipped = [r["name"] for r in list_models() if r["weights"]]
    assert "ude-lotka-volterra" in shipped
    for name in shipped:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no version mismatch for weights shipped with this version
            model = load_pretrained(name)
        assert model.card["name"] == name and not model.training


def test_paired_datamodule_from_card_with_overrides():
    model = load_pretrained("ude-lotka-volterra")
    dm = model.datamodule(noise=0.05)
    assert dm.hparams.noise == 0.05
    assert dm.hparams.t_train == model.card["data"]["t_train"]


@pytest.mark.parametrize(("loc", "error", "match"), [
    ("gpu", ValueError, "map_location='gpu' is not a device"),
    ({"cuda:0": "cpu"}, TypeError, "map_location must be a device"),
    (None, TypeError, "map_location must be a device"),
])
def test_bad_map_location_is_named_not_called_corrupt(tmp_path, loc, error, match):
    card_path = save_pretrained(_small(), tmp_path)
    with pytest.raises(error, match=match):
        load_pretrained(card_path, map_location=loc)
    with pytest.raises(error, match=match):
        load_pretrained("ude-lotka-volterra", map_location=loc)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_map_location_without_cuda_is_a_clear_error(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    with pytest.raises(ValueError, match="map_location='cuda', but CUDA is not available") as info:
        load_pretrained(card_path, map_location="cuda")
    assert "corrupt" not in str(info.value)


def test_float64_weights_round_trip_exactly(tmp_path):
    m = _small().double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():  # values that float32 cannot hold
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    loaded = load_pretrained(save_pretrained(m, tmp_path))
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_upper_case_card_digest_is_accepted(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    card["sha256"] = card["sha256"].upper()
    card_path.write_text(json.dumps(card))
    assert load_pretrained(card_path).card["sha256"] == card["sha256"]


@pytest.mark.parametrize("bad", [None, 3, b"ude-lotka-volterra", ""])
def test_name_or_path_of_another_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="name_or_path must be"):
        resolve_card(bad)


def test_folder_named_like_a_shipped_model_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ude-lotka-volterra").mkdir()  # e.g. left by `zoo release ude-lotka-volterra --out ...`
    shipped = resolve_card("ude-lotka-volterra")
    assert shipped.name == "ude-lotka-volterra.json" and shipped.parent != tmp_path / "ude-lotka-volterra"
    assert load_pretrained("ude-lotka-volterra").card["name"] == "ude-lotka-volterra"
    # an explicit path to the folder stays strict
    for path in ("./ude-lotka-volterra", tmp_path / "ude-lotka-volterra", str(tmp_path / "ude-lotka-volterra")):
        with pytest.raises(CheckpointError, match="no checkpoint at"):
            resolve_card(path)
    # a folder with no card and no such shipped name
    (tmp_path / "mine").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint at mine"):
        resolve_card("mine")
    # a folder holding a card stands for it
    card_path = save_pretrained(_small(), tmp_path / "released", name="released")
    assert resolve_card("released").resolve() == card_path.resolve()
