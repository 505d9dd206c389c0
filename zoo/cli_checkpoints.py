"""What ``hybridzoo fit|validate|test|predict`` checks of a ``--ckpt_path`` before LightningCLI runs.

LightningCLI loads the file itself before it builds anything, and Lightning restores it only after
``prepare_data`` and ``setup`` (minutes of simulation for a Navier-Stokes data set); either fails in a long
traceback. These checks refuse an unusable or foreign checkpoint in one line, first, and warn where the
checkpoint's own hyperparameters replace a ``--model.*`` value.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridzoo.zoo.base import _as_json
from hybridzoo.zoo.cli_values import _value


def _ckpt_path_arg(argv: Sequence[str]) -> str | None:
    """The value of the last ``--ckpt_path X`` / ``--ckpt_path=X`` on a command line, if any."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--ckpt_path" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--ckpt_path="):
            found = arg.split("=", 1)[1]
    return found


def _warn_overridden_by_checkpoint(argv: Sequence[str], checkpoint: dict | None) -> None:
    """Warn for each ``--model.KEY VALUE`` that a ``--ckpt_path`` checkpoint's own hyperparameter will replace.

    LightningCLI builds the model from the checkpoint's hyperparameters, so such a value is dropped without a
    word (``--model.hidden 16`` on a checkpoint trained with 8 tests the 8).
    """
    saved = (checkpoint or {}).get("hyper_parameters") or {}
    for i, arg in enumerate(argv):
        if not arg.startswith("--model."):
            continue
        key, _, value = arg.removeprefix("--model.").removeprefix("init_args.").partition("=")
        if not _ and i + 1 < len(argv):
            value = argv[i + 1]
        if key not in saved:
            continue
        try:  # as JSON both: a checkpoint's tuple (center=(2.0, 2.0)) equals the command line's list
            same = _as_json(_value(value)) == _as_json(saved[key])
        except Exception:  # noqa: BLE001 (a value YAML cannot read differs from any saved one)
            same = False
        if not same:
            warnings.warn(f"--model.{key} {value} is replaced by the --ckpt_path checkpoint's own {key}="
                          f"{saved[key]!r} (LightningCLI builds the model from a checkpoint's hyperparameters)",
                          UserWarning, stacklevel=1)


def _load_checkpoint(ckpt_path: object) -> dict | None:
    """A ``--ckpt_path``'s checkpoint (``None`` for Lightning's own names); ``SystemExit``, one line, if unusable.

    LightningCLI itself loads the file before it builds anything, and fails in a long traceback.
    """
    text = "" if ckpt_path is None else str(ckpt_path)
    if text in ("", "last", "best", "hpc", "null") or text.startswith("registry") or "://" in text:
        return None  # Lightning's own names, and remote files: Lightning resolves them
    import torch

    path = Path(text).expanduser()  # the shell leaves ~ in --ckpt_path=~/...; Lightning's loader expands it
    if path.is_dir():  # a sharded (FSDP, DeepSpeed) checkpoint: the strategy reads it
        return None
    if not path.is_file():
        raise SystemExit(f"hybridzoo: --ckpt_path {ckpt_path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (whatever the unpickler says, the file is no checkpoint of ours)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SystemExit(f"hybridzoo: --ckpt_path {ckpt_path} is not a Lightning checkpoint torch can load "
                         f"({first})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise SystemExit(f"hybridzoo: --ckpt_path {ckpt_path} holds no state_dict: not a Lightning checkpoint "
                         "(a zoo model's .safetensors weights load with --model.pretrained)")
    return checkpoint


def _check_ckpt_path(ckpt_path: object, checkpoint: dict | None, model: Any) -> None:
    """Refuse (``SystemExit``, one line) a ``--ckpt_path`` checkpoint (:func:`_load_checkpoint`) of another model."""
    if checkpoint is None:
        return
    state = checkpoint["state_dict"]
    own = model.state_dict()
    ours, theirs = set(own), set(state)
    if ours != theirs:
        missing, extra = sorted(ours - theirs), sorted(theirs - ours)
        raise SystemExit(f"hybridzoo: --ckpt_path {ckpt_path} holds another model's weights than "
                         f"{type(model).__name__}'s: {len(missing)} of its tensors missing (e.g. {missing[:2]}), "
                         f"{len(extra)} not its own (e.g. {extra[:2]})")
    resized = [k for k in sorted(ours) if tuple(own[k].shape) != tuple(getattr(state[k], "shape", ()))]
    if resized:
        k = resized[0]
        raise SystemExit(f"hybridzoo: --ckpt_path {ckpt_path} holds weights of other sizes than this "
                         f"{type(model).__name__}'s ({len(resized)} tensors, e.g. {k}: {tuple(state[k].shape)} "
                         f"against {tuple(own[k].shape)}): give the --model.* settings it was trained with")
