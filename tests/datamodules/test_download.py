import hashlib
import http.server
import threading
from functools import partial

import pytest
from hybridzoo.datamodules.download import ChecksumError, download


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_checksum(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"hello hybridzoo")
    sha = hashlib.sha256(b"hello hybridzoo").hexdigest()
    dest = download(f"{url}/f.bin", tmp_path / "out" / "f.bin", sha)
    assert dest.read_bytes() == b"hello hybridzoo"


def test_checksum_mismatch_refuses_and_leaves_nothing(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download(f"{url}/f.bin", tmp_path / "out" / "f.bin", "0" * 64)
    assert list((tmp_path / "out").iterdir()) == []


def test_falls_back_to_next_mirror(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"ok")
    sha = hashlib.sha256(b"ok").hexdigest()
    dest = download([f"{url}/missing.bin", f"{url}/f.bin"], tmp_path / "f.bin", sha)
    assert dest.read_bytes() == b"ok"


def test_existing_file_with_other_content_is_not_overwritten(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"new")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"user's own file")
    with pytest.raises(ChecksumError, match="overwrite=True"):
        download(f"{url}/f.bin", dest, hashlib.sha256(b"new").hexdigest())
    assert dest.read_bytes() == b"user's own file"


def test_bad_urls():
    with pytest.raises(ValueError, match="urls must be http"):
        download("ftp://example.org/x", "x", None)
    with pytest.raises(ValueError, match="at least one URL"):
        download([], "x", None)


def test_unreachable_mirror_named_sha256_is_not_a_checksum_mismatch(tmp_path):
    missing = tmp_path / "sha256" / "missing.bin"
    with pytest.raises(OSError, match="download failed from every mirror") as info:
        download(missing.as_uri(), tmp_path / "out.bin", hashlib.sha256(b"x").hexdigest())
    assert not isinstance(info.value, ChecksumError)


def test_mismatch_then_unreachable_mirror_is_a_checksum_error(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download([f"{url}/f.bin", (tmp_path / "missing.bin").as_uri()], tmp_path / "out.bin", "0" * 64)


def test_digest_compares_case_insensitively(tmp_path):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"hello")
    upper = hashlib.sha256(b"hello").hexdigest().upper()
    dest = download(src.as_uri(), tmp_path / "out" / "payload.bin", upper)
    assert dest.read_bytes() == b"hello"
    assert download(src.as_uri(), dest, upper) == dest  # the existing file is recognised as well


def test_a_truncated_response_falls_back_to_the_next_mirror(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"ok")

    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # promises 1000 bytes, sends 5 and hangs up: urllib raises IncompleteRead
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"short")
            self.close_connection = True

        def log_message(self, *args):
            pass

    bad = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    try:
        bad_url = f"http://127.0.0.1:{bad.server_address[1]}/f.bin"
        dest = download([bad_url, f"{url}/f.bin"], tmp_path / "f.bin", hashlib.sha256(b"ok").hexdigest())
        assert dest.read_bytes() == b"ok"
        with pytest.raises(OSError, match="IncompleteRead"):
            download(bad_url, tmp_path / "g.bin", None)
        assert not (tmp_path / "g.bin").exists()
    finally:
        bad.shutdown()
        bad.server_close()


def test_overwrite_must_be_a_bool_and_the_users_file_survives(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"new content")
    dest = tmp_path / "user.bin"
    dest.write_bytes(b"my precious data")
    for value in ("no", 0, None):  # "no" is truthy: it used to replace the file
        with pytest.raises(TypeError, match="overwrite must be a bool"):
            download(src.as_uri(), dest, hashlib.sha256(b"new content").hexdigest(), overwrite=value)
    assert dest.read_bytes() == b"my precious data"


@pytest.mark.parametrize("digest,error", [("abc", ValueError), ("0" * 63 + "g", ValueError),
                                          ("0" * 65, ValueError), (b"0" * 64, TypeError), (5, TypeError)])
def test_malformed_sha256_is_refused_before_fetching(tmp_path, digest, error):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    with pytest.raises(error, match="sha256"):  # was a ChecksumError blaming the file, after the download
        download(src.as_uri(), tmp_path / "out" / "f.bin", digest)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("timeout,error", [(-1, ValueError), (0, ValueError), (float("inf"), ValueError),
                                           ("30", TypeError), (None, TypeError), (True, TypeError)])
def test_timeout_must_be_a_positive_number(tmp_path, timeout, error):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    with pytest.raises(error, match="timeout"):  # "30" and -1 (file URLs) used to be accepted
        download(src.as_uri(), tmp_path / "out" / "f.bin", None, timeout=timeout)
    assert not (tmp_path / "out").exists()


def test_malformed_mirror_counts_as_a_failed_mirror(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"ok")
    sha = hashlib.sha256(b"ok").hexdigest()
    dest = download(["http://[::1/f.bin", f"{url}/f.bin"], tmp_path / "f.bin", sha)
    assert dest.read_bytes() == b"ok"
    with pytest.raises(OSError, match="download failed from every mirror") as info:
        download(["http://[::1/g.bin", f"{url}/missing.bin"], tmp_path / "g.bin", sha)
    assert "http://[::1/g.bin: ValueError" in str(info.value) and f"{url}/missing.bin: HTTPError" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "www"]


def test_url_schemes_are_case_insensitive(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"ok")
    sha = hashlib.sha256(b"ok").hexdigest()
    assert download(url.replace("http", "HTTP") + "/f.bin", tmp_path / "a.bin", sha).read_bytes() == b"ok"
    src = root / "f.bin"
    assert download("FILE" + src.as_uri()[4:], tmp_path / "b.bin", sha).read_bytes() == b"ok"
