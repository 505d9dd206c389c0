"""Model cards: the JSON half of a checkpoint, and how a name, path or URL finds one.

A checkpoint is two files side by side: ``<name>.safetensors`` (a flat state dict, never a pickle)
and ``<name>.json`` (the card: model, hparams, data config, metrics, training command, seed, wall
time, hardware, library versions and the weights' sha256). Cards are found, in order, as a URL, a
local path (the card, its weights file, or a folder holding one card), a card shipped in
``hybridzoo.checkpoints``, or a card placed in the local checkpoint cache ``$HYBRIDZOO_DATA/checkpoints``.
A URL's card and weights are downloaded into a cache folder of that URL's own,
``<cache>/url/<first 16 hex digits of the URL's sha256>``: two URLs never share files, and nothing
placed directly in the cache is replaced by a download. :mod:`hybridzoo.zoo.hub` reads and writes the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import torch
from hybridzoo.datamodules.cache import atomic_write_bytes, data_root
from hybridzoo.datamodules.download import check_sha256, download

WEIGHTS_SUFFIX = ".safetensors"
CARD_KEYS = ("name", "paper", "weights", "sha256", "metrics", "data", "train_command", "seed", "epochs",
             "wall_time_s", "hardware", "versions")
RESERVED_KEYS = (*CARD_KEYS, "model", "hparams")  # written by save_pretrained itself, never from ``extra``


class CheckpointError(ValueError):
    """A checkpoint or its card is missing, corrupt, or does not match."""


def library_version() -> str:
    """Installed version of hybridzoo."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hybridzoo")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on."""
    import lightning
    import numpy

    return {
        "hybridzoo": library_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def hardware() -> str:
    """A one-line description of the machine (CPU count, torch's threads, and GPU name, if any)."""
    desc = f"{platform.machine()} CPU x{os.cpu_count()}, torch threads {torch.get_num_threads()}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return desc


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept: ``$HYBRIDZOO_DATA/checkpoints``."""
    return data_root() / "checkpoints"


def _is_url(s: str) -> bool:
    return urlparse(s).scheme in ("http", "https", "file")


def is_bare_name(s: str) -> bool:
    """Whether ``s`` reads as a checkpoint name rather than a path (no separator, no ``~``/``.`` start)."""
    seps = {"/", os.sep, os.altsep} - {None}
    return not any(sep in s for sep in seps) and not s.startswith(("~", "."))


def _is_card(path: Path) -> bool:
    """Whether ``path`` holds a JSON object with ``weights`` and ``sha256`` keys."""
    try:
        card = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(card, dict) and "weights" in card and "sha256" in card


def _card_in_folder(p: Path) -> Path | None:
    """The card a folder holds: ``<folder>/<folder name>.json``, else its only card, else ``None``.

    Only JSON objects with ``weights`` and ``sha256`` keys count as cards; other JSON files, such as
    the ``equations.json`` that ``hybridzoo distil`` writes, are ignored.
    """
    own = p / f"{p.name}.json"
    if own.is_file() and _is_card(own):
        return own
    cards = sorted(f for f in p.glob("*.json") if f.is_file() and _is_card(f))
    if len(cards) > 1:
        raise CheckpointError(f"folder {p} holds several model cards ({', '.join(f.name for f in cards)}): "
                              "name the card itself")
    return cards[0] if cards else None


def resolve_card(name_or_path: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None) -> Path:
    """Find the card (JSON) of a checkpoint, downloading it (and its weights) for a URL.

    A URL's files go to their own folder under ``cache`` (see the module docstring). A folder stands
    for the card it holds (see :func:`_card_in_folder`). A bare name (no path separator) that is also
    the name of a folder without a card, such as ``hybridzoo distil NAME --out NAME`` leaves behind in
    the current directory, still finds the shipped checkpoint ``NAME``, or the card ``NAME.json``
    placed directly in ``cache``; write ``./NAME`` to mean the folder.

    Raises CheckpointError for a missing card, a URL without a file name or a failed download.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a model name, a path or a URL, got {name_or_path!r}")
    s = os.fspath(name_or_path)
    if not isinstance(s, str) or not s:
        raise TypeError(f"name_or_path must be a model name, a path or a URL, got {name_or_path!r}")
    cdir = Path(cache) if cache is not None else cache_dir()
    if _is_url(s):
        return _fetch_url(s, cdir)
    p = Path(s).expanduser()
    if p.suffix == ".json" and p.is_file():
        return p
    if p.suffix == WEIGHTS_SUFFIX and p.is_file():
        card = p.with_suffix(".json")
        if not card.is_file():
            raise CheckpointError(f"no model card {card.name} beside {p}: a checkpoint is weights + card")
        return card
    folder_without_card = False
    if p.is_dir():
        card = _card_in_folder(p)
        if card is not None:
            return card
        if not (isinstance(name_or_path, str) and is_bare_name(s)):
            raise CheckpointError(f"no checkpoint at {p}: the folder holds no model card")
        folder_without_card = True  # maybe a folder named like a shipped checkpoint: look the name up
    elif p.suffix in (".json", WEIGHTS_SUFFIX):
        raise CheckpointError(f"no checkpoint at {p}")
    shipped = resources.files("hybridzoo.checkpoints") / f"{s}.json"
    if shipped.is_file():
        return Path(str(shipped))
    cached = cdir / f"{s}.json"
    if cached.is_file():
        return cached
    if folder_without_card:
        raise CheckpointError(f"no checkpoint at {p}: the folder holds no model card, and no card named {s!r} "
                              f"ships or is cached in {cdir}")
    from hybridzoo.zoo.registry import names

    known = [n for n in names() if (resources.files("hybridzoo.checkpoints") / f"{n}.json").is_file()]
    if p.is_file():  # a Lightning .ckpt, say: a file, just not a zoo checkpoint (it read "not a file")
        raise CheckpointError(f"{p} is not a zoo checkpoint (weights {WEIGHTS_SUFFIX} beside a model card .json); "
                              "a Lightning .ckpt resumes or tests with Trainer(ckpt_path=...) or --ckpt_path")
    if s in names():
        raise ValueError(
            f"zoo model {s!r} ships no trained checkpoint (train one: hybridzoo zoo release {s} --out DIR); "
            f"shipped checkpoints: {', '.join(known) or 'none'}"
        )
    raise ValueError(
        f"unknown checkpoint {s!r}: not a file, not a URL, and no card named so ships or is cached in {cdir}; "
        f"shipped checkpoints: {', '.join(known) or 'none'}"
    )


def is_file_name(s: str) -> bool:
    """Whether ``s`` is a plain file name: no folder part on any platform, not ``.`` or ``..``."""
    return s not in ("", ".", "..") and Path(s).name == s and posixpath.basename(s) == s


def _fetch_url(url: str, cdir: Path) -> Path:
    """Download a card, then its weights (checksummed against the card), into the URL's cache folder.

    The card is fetched on every call, so a checkpoint replaced on the server is picked up; the weights
    are fetched again only when the cached file does not match the card's sha256.
    """
    import http.client
    import urllib.request

    card_name = posixpath.basename(unquote(urlparse(url).path))
    if not is_file_name(card_name):
        raise CheckpointError(f"URL {url} does not end in a file name: give the URL of the model card (.json)")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310
            raw = resp.read()
    except (OSError, http.client.HTTPException) as err:  # URLError/HTTPError and timeouts are OSErrors
        raise CheckpointError(f"cannot fetch {url}: {err}") from None
    try:
        card = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{url} is not a hybridzoo model card: {err}") from None
    _check_card(card, url)
    if card["weights"] == card_name:
        raise CheckpointError(f"card at {url} names weights {card['weights']!r}, the card's own file name")
    folder = cdir / "url" / hashlib.sha256(url.encode()).hexdigest()[:16]
    weights_url = urljoin(url, card["weights"])
    try:
        # the folder holds only what this URL served: a stale copy there is no user's file, replace it
        download(weights_url, folder / card["weights"], card["sha256"], overwrite=True)
    except (OSError, http.client.HTTPException) as err:
        raise CheckpointError(f"cannot fetch {weights_url}, the weights of {url}: {err}") from None
    atomic_write_bytes(folder / card_name, raw)
    return folder / card_name


def _check_card(card: Any, where: object) -> dict[str, Any]:
    """``card`` if ``weights`` (a file name), ``sha256`` and ``model`` are strings and ``hparams`` a dict."""
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {where} is not a JSON object")
    missing = [k for k in ("weights", "sha256", "model", "hparams") if k not in card]
    if missing:
        raise CheckpointError(f"model card {where} lacks {missing}")
    for key, kind in (("weights", str), ("sha256", str), ("model", str), ("hparams", dict)):
        if not isinstance(card[key], kind):
            raise CheckpointError(f"model card {where}: {key!r} must be {'a string' if kind is str else 'an object'}, "
                                  f"got {type(card[key]).__name__} {card[key]!r:.80}")
    if not is_file_name(card["weights"]):
        raise CheckpointError(f"model card {where}: 'weights' must be a file name beside the card, "
                              f"got {card['weights']!r}")
    try:
        check_sha256("'sha256'", card["sha256"])
    except ValueError as err:  # a malformed digest can match no file: say so before any download
        raise CheckpointError(f"model card {where}: {err}") from None
    return card


def read_card(path: Path) -> dict[str, Any]:
    """Read a card file; a CheckpointError names what is unreadable, missing or mistyped (see :func:`_check_card`)."""
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(f"model card {path} cannot be read: {err}") from None
    return _check_card(card, path)
