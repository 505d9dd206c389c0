"""Checksummed downloads into a cache folder (optional: nothing in the tests or demo needs a network)."""

from __future__ import annotations

import hashlib
import http.client
import os
import string
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from hybridzoo.physics.validation import check_bool, check_positive_number

#: URL schemes :func:`download` fetches from.
URL_SCHEMES = ("http", "https", "file")


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the expected sha256."""


def is_supported_url(url: object) -> bool:
    """Whether ``url`` is a string with a scheme :func:`download` fetches (``http``, ``https``, ``file``)."""
    # schemes are case-insensitive (RFC 3986), and urllib accepts "HTTP://" too
    return isinstance(url, str) and url.split(":", 1)[0].lower() in URL_SCHEMES


def check_sha256(name: str, value: object) -> str:
    """Check a sha256 hex digest (64 hex characters, either case); return it lower-cased."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a sha256 hex digest (str), got {type(value).__name__} {value!r:.80}")
    digest = value.strip().lower()  # hex digests compare case-insensitively
    # a malformed digest matches no file: up front it is a typo, after a download a bogus "tampered" error
    if len(digest) != 64 or not set(digest) <= set(string.hexdigits):
        raise ValueError(f"{name} must be 64 hexadecimal characters, got {value!r:.80}")
    return digest


def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike[str],
    sha256: str | None,
    *,
    timeout: float = 30.0,
    overwrite: bool = False,
) -> Path:
    """Fetch the first URL of ``urls`` that answers with the expected content and save it to ``dest``.

    The file is streamed into a temporary file beside ``dest`` and renamed into place only after its
    sha256 matches, so a failed or tampered download never leaves a file behind. An existing ``dest``
    with the right checksum is reused; one with another checksum is never overwritten unless
    ``overwrite=True``.

    Args:
        urls: one URL or mirrors tried in order (``http``, ``https`` or ``file``).
        dest: target path.
        sha256: expected hex digest, 64 hex characters (either case); ``None`` accepts any content
            (not recommended).
        timeout: seconds per connection attempt, a positive number.
        overwrite: replace an existing ``dest`` whose checksum differs (a bool).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ChecksumError: every mirror answered with other content.
        OSError: no mirror could be reached (a malformed URL counts as an unreachable mirror).
        TypeError, ValueError: a bad argument, before anything is fetched or written.
    """
    dest = Path(dest)
    mirrors = [urls] if isinstance(urls, str) else list(urls)
    if not mirrors:
        raise ValueError("urls must name at least one URL")
    for u in mirrors:
        if not is_supported_url(u):
            raise ValueError(f"urls must be http(s) or file URLs, got {u!r}")
    if sha256 is not None:
        sha256 = check_sha256("sha256", sha256)
    check_positive_number("timeout", timeout)
    check_bool("overwrite", overwrite)  # "no" would replace the user's file
    if dest.exists():
        if sha256 is None or _sha256(dest) == sha256:
            return dest
        if not overwrite:
            raise ChecksumError(f"{dest} exists with another sha256 than {sha256}; pass overwrite=True to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    mismatch = False  # some mirror answered, with other content
    for url in mirrors:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
                size = 0
                while block := resp.read(1 << 20):
                    h.update(block)
                    out.write(block)
                    size += len(block)
                promised = resp.headers.get("Content-Length")
                if promised is not None and promised.isdigit() and size != int(promised):
                    # a connection cut short ends the reads quietly: without a checksum, only the length tells
                    raise http.client.IncompleteRead(b"", int(promised) - size)
            if sha256 is not None and h.hexdigest() != sha256:
                errors.append(f"{url}: sha256 {h.hexdigest()} != expected {sha256}")
                mismatch = True
                continue
            os.replace(tmp, dest)
            return dest
        # a truncated body is an HTTPException, not an OSError; a malformed URL ("http://[::1/f") a ValueError
        except (OSError, ValueError, http.client.HTTPException) as err:
            errors.append(f"{url}: {type(err).__name__}: {err}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    if mismatch:
        raise ChecksumError("download refused, checksum mismatch:\n  " + "\n  ".join(errors))
    raise OSError("download failed from every mirror:\n  " + "\n  ".join(errors))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
