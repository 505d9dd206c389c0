import hashlib
import http.server
import json
import threading
import warnings
from functools import partial

import pytest
import torch
from hybridzoo.zoo import create_model, load_pretrained, save_pretrained
from hybridzoo.zoo.cards import CheckpointError, read_card, resolve_card


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
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(NotADirectoryError, match="out_dir '.*afile' is a file, not a folder"):
        save_pretrained(_small(), afile, overwrite=True)
    assert afile.read_text() == "mine"


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError, match="unknown checkpoint 'no-such-model'"):
        load_pretrained("no-such-model")
    with pytest.raises(ValueError, match="zoo model 'rk-net-mnist' ships no trained checkpoint"):
        load_pretrained("rk-net-mnist")  # a model of the zoo, not an unknown name
    with pytest.raises(CheckpointError, match="no model card"):
        w = tmp_path / "orphan.safetensors"
        w.write_bytes(b"x")
        resolve_card(w)
    lightning = tmp_path / "epoch=3.ckpt"  # a file: it was reported as "not a file"
    lightning.write_bytes(b"a Lightning checkpoint")
    with pytest.raises(CheckpointError, match=r"epoch=3.ckpt is not a zoo checkpoint .* --ckpt_path"):
        load_pretrained(str(lightning))


def test_architecture_mismatch_is_a_clear_error(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    with pytest.raises(ValueError, match="does not fit this model"):
        create_model("ude-lotka-volterra", hidden=16, pretrained=str(card_path))


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
        folder = tmp_path / "cache" / "url" / hashlib.sha256(url.encode()).hexdigest()[:16]  # the URL's own
        assert sorted(p.name for p in folder.iterdir()) == [card_path.name, "ude-lotka-volterra.safetensors"]
        # a tampered server file is refused
        (folder / "ude-lotka-volterra.safetensors").unlink()
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


def test_folder_with_other_json_does_not_hide_a_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ude-lotka-volterra"  # e.g. left by `hybridzoo distil ude-lotka-volterra --out ...`
    folder.mkdir()
    (folder / "equations.json").write_text(json.dumps({"dx/dt": "1.3*x - 0.9*x*y"}))
    assert load_pretrained("ude-lotka-volterra").card["name"] == "ude-lotka-volterra"
    # the folder's own-named JSON file is no card either unless it holds weights and sha256
    (folder / "ude-lotka-volterra.json").write_text("[1, 2]")
    assert resolve_card("ude-lotka-volterra").parent != folder
    with pytest.raises(CheckpointError, match="holds no model card"):
        resolve_card("./ude-lotka-volterra")
    # beside other JSON files, the one card in a folder is still found
    card_path = save_pretrained(_small(), tmp_path / "released", name="mine")
    (tmp_path / "released" / "equations.json").write_text("{}")
    assert resolve_card("released").resolve() == card_path.resolve()
    save_pretrained(_small(), tmp_path / "released", name="other")
    with pytest.raises(CheckpointError, match="several model cards"):
        resolve_card("released")


class _Unprintable:
    def __str__(self):
        raise RuntimeError("cannot print")


def test_failed_overwrite_keeps_the_old_checkpoint(tmp_path):
    old = _small()
    card_path = save_pretrained(old, tmp_path, metrics={"v": 1.0})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    new = _small()
    with torch.no_grad():
        for p in new.parameters():
            p.add_(1.0)
    with pytest.raises(RuntimeError, match="cannot print"):  # the card cannot be encoded
        save_pretrained(new, tmp_path, extra={"note": _Unprintable()}, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary left behind either
    torch.testing.assert_close(_outputs(load_pretrained(card_path)), _outputs(old))


def test_failed_write_of_the_card_removes_the_temporaries(tmp_path, monkeypatch):
    from hybridzoo.zoo import hub

    card_path = save_pretrained(_small(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fsync, calls = hub.os.fsync, []

    def fsync_then_fail_on_the_second(fd):  # the disk fills up after the weights were written
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(hub.os, "fsync", fsync_then_fail_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained(_small(), tmp_path, overwrite=True)
    monkeypatch.undo()
    assert len(calls) == 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load_pretrained(card_path)


def test_mixed_dtypes_are_kept(tmp_path):
    m = create_model("ude-lotka-volterra", hidden=8)
    m.physics.double()
    with torch.no_grad():
        m.physics.theta3.fill_(0.1)  # not a float32 number
    loaded = load_pretrained(save_pretrained(m, tmp_path))
    saved = m.state_dict()
    for k, v in loaded.state_dict().items():
        assert v.dtype == saved[k].dtype and torch.equal(v, saved[k]), k
    assert loaded.physics.theta3.dtype == torch.float64 and loaded.physics.theta3.requires_grad
    assert {p.dtype for p in loaded.parameters()} == {torch.float32, torch.float64}


def _serve(folder):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_urls_are_cached_apart_from_each_other_and_from_user_cards(tmp_path):
    cache = tmp_path / "cache"
    mine = save_pretrained(_small(), cache, name="mine")  # a user's own card, flat in the cache
    mine_files = {p.name: p.read_bytes() for p in cache.iterdir()}
    a, b = _small(), _small()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    save_pretrained(a, tmp_path / "www" / "a", name="mine")  # same file names at two URLs
    save_pretrained(b, tmp_path / "www" / "b", name="mine")
    httpd, root = _serve(tmp_path / "www")
    try:
        got_a = load_pretrained(f"{root}/a/mine.json", cache=str(cache))
        got_b = load_pretrained(f"{root}/b/mine.json", cache=str(cache))
        torch.testing.assert_close(_outputs(got_a), _outputs(a))
        torch.testing.assert_close(_outputs(got_b), _outputs(b))
        torch.testing.assert_close(_outputs(load_pretrained(f"{root}/a/mine.json", cache=str(cache))), _outputs(a))
        # the server's checkpoint is replaced: the same URL gets the new one
        save_pretrained(b, tmp_path / "www" / "a", name="mine", overwrite=True)
        torch.testing.assert_close(_outputs(load_pretrained(f"{root}/a/mine.json", cache=str(cache))), _outputs(b))
        assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()} == mine_files
        assert resolve_card("mine", cache=cache) == mine  # bare names still find flat cards
        with pytest.raises(CheckpointError, match="does not end in a file name"):
            load_pretrained(f"{root}/a/", cache=str(cache))
        with pytest.raises(CheckpointError, match=f"cannot fetch {root}/a/nothing.json"):
            load_pretrained(f"{root}/a/nothing.json", cache=str(cache))
        (tmp_path / "www" / "b" / "mine.safetensors").unlink()
        with pytest.raises(CheckpointError, match=f"cannot fetch {root}/b/mine.safetensors"):
            load_pretrained(f"{root}/b/mine.json", cache=str(tmp_path / "cache2"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    with pytest.raises(CheckpointError, match="cannot fetch"):  # nothing listens there any more
        load_pretrained(f"{root}/a/mine.json", cache=str(cache))


def test_url_card_naming_weights_outside_its_folder_is_refused(tmp_path):
    www = tmp_path / "www"
    card_path = save_pretrained(_small(), www)
    card = json.loads(card_path.read_text())
    httpd, root = _serve(www)
    try:
        for weights in ("../x.safetensors", "..", "bad.json"):  # the last would land on the card
            card["weights"] = weights
            (www / "bad.json").write_text(json.dumps(card))
            with pytest.raises(CheckpointError, match="weights"):
                load_pretrained(f"{root}/bad.json", cache=str(tmp_path / "cache"))
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Plain(torch.nn.Module):
    pass


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": 123}, TypeError, "name must be a string"),
    ({"name": ""}, ValueError, "name must be"),
    ({"name": "../../escaped"}, ValueError, "name must be a file name"),
    ({"name": "sub/x"}, ValueError, "name must be a file name"),
    ({"name": ".hidden"}, ValueError, "name must be a file name"),
    ({"metrics": {"a": "x"}}, ValueError, "metrics\\['a'\\] must be a number"),
    ({"metrics": {"a": None}}, ValueError, "metrics\\['a'\\] must be a number"),
    ({"metrics": [1.0]}, TypeError, "metrics must be a dict"),
    ({"data": "noise=0"}, TypeError, "data must be a dict"),
    ({"extra": {"weights": "other.safetensors"}}, ValueError, "extra must not set 'weights'"),
    ({"extra": {"model": "x", "note": 1}}, ValueError, "extra must not set 'model'"),
    ({"extra": {"hparams": {}}}, ValueError, "extra must not set 'hparams'"),
    ({"extra": ["note"]}, TypeError, "extra must be a dict"),
])
def test_save_pretrained_checks_its_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_pretrained(_small(), tmp_path / "x" / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing written, neither in out_dir nor two levels up


def test_save_pretrained_needs_a_registered_zoo_model(tmp_path):
    for model in ("str", _Plain()):
        with pytest.raises(TypeError, match="model must be a hybridzoo model"):
            save_pretrained(model, tmp_path)
    m = _small()
    m.zoo_name = None  # an unregistered model: load_pretrained could not rebuild it
    with pytest.raises(ValueError, match="registered zoo model") as info:
        save_pretrained(m, tmp_path, name="my-tiny")
    assert "unknown zoo model" not in str(info.value)
    m.zoo_name = "my-tiny"
    with pytest.raises(ValueError, match="registered zoo model"):
        save_pretrained(m, tmp_path)
    assert list(tmp_path.iterdir()) == []
    # a registered model may be saved under another name
    assert load_pretrained(save_pretrained(_small(), tmp_path, name="my-tiny")).card["name"] == "my-tiny"


@pytest.mark.parametrize(("field", "value"), [
    ("weights", 5), ("weights", "../elsewhere.safetensors"), ("sha256", None), ("sha256", "abc"), ("model", ["ude"]),
    ("hparams", []), ("hparams", "hidden=8"),
])
def test_badly_typed_card_fields_are_named(tmp_path, field, value):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    card[field] = value
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        load_pretrained(card_path)


def test_card_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_card(tmp_path / "x.json")


def test_a_digest_that_differs_in_its_last_digit_is_refused(tmp_path):
    card_path = save_pretrained(create_model("ude-lotka-volterra", hidden=8), tmp_path)
    card = json.loads(card_path.read_text())
    card["sha256"] = card["sha256"][:-1] + ("1" if card["sha256"][-1] == "0" else "0")
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_pretrained(card_path)


def test_a_card_whose_hparams_or_weights_are_unusable_is_a_checkpoint_error(tmp_path):
    card_path = save_pretrained(_small(), tmp_path)
    card = json.loads(card_path.read_text())
    card["hparams"]["not_an_argument"] = 1.0  # a raw TypeError from its constructor before
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="the card's hparams do not build a UDELotkaVolterra"):
        load_pretrained(card_path)
    model = _small()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))  # a diverged run's weights, saved with a matching sha256
    nan_card = save_pretrained(model, tmp_path / "nan")
    with pytest.raises(CheckpointError, match="holds NaN or infinite values in 1 tensors"):
        load_pretrained(nan_card)
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):  # pretrained= loads it too
        create_model("ude-lotka-volterra", hidden=8, adam_epochs=1, lbfgs_epochs=0, pretrained=str(nan_card))
