"""The ``hybridzoo`` console script.

``hybridzoo fit|validate|test|predict -c CONFIG`` is a thin LightningCLI (subclass mode: any
zoo model and DataModule); ``CONFIG`` is a YAML path or the name of a packaged config
(``ude_lotka_volterra`` or ``ude-lotka-volterra``). The other commands are the zoo's own:

    hybridzoo zoo list [--json]            models, papers, shipped weights, card metrics
    hybridzoo zoo show NAME [--json]       a model's registry entry and card (--json: the card alone)
    hybridzoo zoo release NAME --out DIR   train, test and write weights + card
    hybridzoo distil NAME_OR_PATH          symbolic distillation of a trained model
    hybridzoo data build NAME [--force]    build (or rebuild) a model's data set
    hybridzoo demo                         the quickstart demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridzoo.zoo.cli_values import _kv

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
TOOL_COMMANDS = ("zoo", "distil", "data", "demo")
DISTIL_FILES = ("pareto.csv", "equations.json", "equations.tex")


# ---------------------------------------------------------------------------------------- LightningCLI
def _packaged_config(value: str) -> str:
    """Map a config name (file stem or registry name) to the packaged YAML; paths pass through."""
    if Path(value).exists() or not value or "/" in value or value.startswith("{"):
        return value
    from hybridzoo.zoo.registry import config_path, names

    stem = value.removesuffix(".yaml")
    for name in names():
        entry_stem = config_path(name).stem
        if stem in (name, entry_stem):
            return str(config_path(name))
    from importlib import resources

    ref = resources.files("hybridzoo.configs") / f"{stem}.yaml"
    return str(ref) if ref.is_file() else value


def resolve_config_args(argv: Sequence[str]) -> list[str]:
    """Rewrite ``-c NAME``/``--config NAME`` to packaged config paths."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("-c", "--config") and i + 1 < len(out):
            out[i + 1] = _packaged_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + _packaged_config(arg.split("=", 1)[1])
    return out


def lightning_cli(argv: Sequence[str]) -> int:
    """Run LightningCLI with the zoo's base classes."""
    import lightning as L
    from hybridzoo.zoo.base import HybridModule
    from hybridzoo.zoo.checkpointing import ZooCheckpoint, logs_nowhere
    from hybridzoo.zoo.cli_checkpoints import (
        _check_ckpt_path,
        _ckpt_path_arg,
        _load_checkpoint,
        _warn_overridden_by_checkpoint,
    )
    from hybridzoo.zoo.registry import check_pairing
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

    class ZooSaveConfig(SaveConfigCallback):
        """Save the run's config beside its logs, and none for a run without a logger.

        Lightning would write ``config.yaml`` into the working directory (the log folder of a run without a
        logger, or under ``fast_dev_run``), and then refuse every later run there for not overwriting it.
        """

        def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
            if logs_nowhere(trainer):
                return
            super().setup(trainer, pl_module, stage)

    class ZooCLI(LightningCLI):
        def instantiate_classes(self) -> None:
            # A constructor's ValueError/TypeError (a bad --model.* value) reaches here wrapped by jsonargparse
            # in a long traceback; its own message, one line, is what the user needs.
            try:
                super().instantiate_classes()
                # --model.pretrained: an unknown name or another model's card fails here, in one line too
                if isinstance(self.model, HybridModule):
                    self.model.load_pending_pretrained()
                # --ckpt_path: Lightning reads it only after prepare_data and setup (an NS data set is minutes of
                # simulation), then fails in a long traceback
                if self.subcommand:
                    ckpt_path = self.config[self.subcommand].get("ckpt_path")  # a config file may set it too
                    checkpoint = preloaded if ckpt_path == given else _load_checkpoint(ckpt_path)
                    _check_ckpt_path(ckpt_path, checkpoint, self.model)
                # a checkpoint's own class under another model's config, a window too short for the look-ahead,
                # nothing left to train: found before prepare_data (an NS data set is minutes), in one line
                if isinstance(self.model, HybridModule) and getattr(self, "datamodule", None) is not None:
                    check_pairing(self.model, self.datamodule)
                    if callable(getattr(self.model, "check_datamodule", None)):
                        self.model.check_datamodule(self.datamodule, self.subcommand or "")
                if isinstance(self.model, HybridModule) and self.subcommand == "fit":
                    self.model.check_trainable()
            except (ValueError, TypeError) as err:
                root: BaseException = err
                while root.__cause__ is not None:
                    root = root.__cause__
                raise SystemExit(f"hybridzoo: {type(root).__name__}: {root}") from None

        def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
            # --trainer.enable_checkpointing false: Lightning refuses a checkpoint callback beside it
            config = self.config_init[self.subcommand] if self.subcommand else self.config_init
            if config.get("trainer", {}).get("enable_checkpointing") is False:
                kept = [c for c in self.trainer_defaults.get("callbacks", []) if not isinstance(c, ZooCheckpoint)]
                self.trainer_defaults = {**self.trainer_defaults, "callbacks": kept}
            return super().instantiate_trainer(**kwargs)

    # before LightningCLI loads it itself, in a traceback; kept for the check of the built model below
    given = _ckpt_path_arg(argv)
    preloaded = _load_checkpoint(given)
    _warn_overridden_by_checkpoint(argv, preloaded)
    with warnings.catch_warnings():
        # ``args`` is the command line with zoo config names resolved to files, given as well as sys.argv by
        # design; sys.argv stays as it is, since DDP relaunches the script with it
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within")
        ZooCLI(
            HybridModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=resolve_config_args(argv),
            trainer_defaults={"callbacks": [ZooCheckpoint()]},
            save_config_callback=ZooSaveConfig,
            auto_configure_optimizers=False,
        )
    return 0


# ---------------------------------------------------------------------------------------- zoo tools
def _fmt(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else str(v)


def cmd_zoo_list(args: argparse.Namespace) -> int:
    """Print the zoo as a table (or JSON)."""
    from hybridzoo.zoo.registry import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("name"), *(len(r["name"]) for r in rows))
    print(f"{'name':{width}} {'weights':8} {'paper':44} metrics (test/<metric>: hybrid, then baselines)")
    for r in rows:
        metrics = ", ".join(f"{k.removeprefix('test/')}={_fmt(v)}" for k, v in r["metrics"].items()
                            if k.startswith("test/"))
        paper = r["paper"] if len(r["paper"]) <= 44 else r["paper"][:41] + "..."
        print(f"{r['name']:{width}} {'yes' if r['weights'] else 'no':8} {paper:44} {metrics or '-'}")
    return 0


def cmd_zoo_show(args: argparse.Namespace) -> int:
    """Print a model's registry entry and card."""
    from hybridzoo.zoo.cards import CheckpointError, read_card, resolve_card
    from hybridzoo.zoo.registry import get_entry, names

    if args.json:  # the card alone, for a pipe to a JSON reader
        print(json.dumps(read_card(resolve_card(args.name)), indent=2))
        return 0
    if args.name in names():
        e = get_entry(args.name)
        print(f"{e.name}: {e.summary}\n  paper: {e.paper}\n  model: {e.model}\n  data: {e.datamodule}\n"
              f"  config: {e.config}")
    try:
        path = resolve_card(args.name)
    except CheckpointError:  # a card that exists but is broken: never report it as absent
        raise
    except ValueError:
        if args.name in names():
            print("  no shipped weights")
            return 0
        raise
    print(json.dumps(read_card(path), indent=2))
    return 0


def cmd_zoo_release(args: argparse.Namespace) -> int:
    """Train, test and write weights + card."""
    from hybridzoo.zoo.release import release

    card = release(
        args.name, args.out, seed=args.seed, overwrite=args.overwrite,
        trainer_overrides=_kv(args.trainer, "--trainer"), model_overrides=_kv(args.model, "--model"),
        data_overrides=_kv(args.data, "--data"), log_dir=args.log_dir,
        command="hybridzoo " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["zoo"] else None,
    )
    print(f"wrote {card} and its weights")
    print(json.dumps(json.loads(Path(card).read_text())["metrics"], indent=2))
    return 0


def cmd_distil(args: argparse.Namespace) -> int:
    """Distil a trained model and print/write the result."""
    from hybridzoo.zoo.distil import distil
    from hybridzoo.zoo.hub import load_pretrained

    out = Path(args.out) if args.out else None
    if out is not None:  # checked before the distillation, which may run for many minutes
        if out.exists() and not out.is_dir():
            raise SystemExit(f"hybridzoo: --out {out} is a file, not a folder")
        clash = [f for f in DISTIL_FILES if (out / f).exists()]
        if clash and not args.overwrite:
            raise SystemExit(f"hybridzoo: {', '.join(str(out / f) for f in clash)} exist; pass --overwrite")
    model = load_pretrained(args.name)
    result = distil(model, backend=args.backend, fine_tune_epochs=args.fine_tune_epochs, seed=args.seed)
    print(result.summary())
    if out is not None:
        from hybridzoo.datamodules.cache import atomic_write_bytes

        files = {
            "pareto.csv": result.pareto_csv().encode(),
            "equations.json": json.dumps({"backend": result.backend, "equations": result.equations(),
                                          "metrics": result.metrics}, indent=2).encode(),
            "equations.tex": ("\n".join(f"{k}: ${v.latex}$" for k, v in result.terms.items()) + "\n").encode(),
        }
        for f in DISTIL_FILES:  # each file whole or not at all
            atomic_write_bytes(out / f, files[f])
        print(f"wrote {out}/{', '.join(DISTIL_FILES)}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    """Build a model's data set."""
    from hybridzoo.zoo.registry import create_datamodule

    dm = create_datamodule(args.name, **_kv(args.data, "--data"))
    if not hasattr(dm, "build"):
        how = ("it reads IDX files from data_dir, or downloads them there with --data.download true when fitting"
               if "data_dir" in dm.hparams else "it is made or read when a run sets it up")
        raise SystemExit(f"hybridzoo: {args.name}'s data needs no build step: {how}")
    where = dm.build(force=args.force)
    print(f"{args.name}: data ready at {where}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the quickstart demo."""
    from hybridzoo.zoo.demo import run_demo

    run_demo(log_dir=args.log_dir)
    return 0


def tools_parser() -> argparse.ArgumentParser:
    """Parser of the zoo's own commands."""
    p = argparse.ArgumentParser(prog="hybridzoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    zoo = sub.add_parser("zoo", help="list, show and release zoo models").add_subparsers(dest="zoo_cmd", required=True)
    q = zoo.add_parser("list", help="models, papers, shipped weights and card metrics")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_zoo_list)
    q = zoo.add_parser("show", help="print a model's registry entry and card")
    q.add_argument("name", help="model name, card path or URL")
    q.add_argument("--json", action="store_true", help="print the card alone, as JSON")
    q.set_defaults(func=cmd_zoo_show)
    q = zoo.add_parser("release", help="train with the packaged config, test, write weights + card")
    q.add_argument("name", help="zoo model to train with its config (hybridzoo zoo list)")
    q.add_argument("--out", required=True, help="folder for NAME.safetensors and NAME.json")
    q.add_argument("--seed", type=int, default=0, help="lightning.seed_everything seed (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace existing files")
    q.add_argument("--log-dir", default="lightning_logs", help="TensorBoard log folder (default lightning_logs)")
    q.add_argument("--trainer", nargs="*", action="extend", metavar="KEY=VALUE", help="Trainer overrides")
    q.add_argument("--model", nargs="*", action="extend", metavar="KEY=VALUE", help="model init overrides")
    q.add_argument("--data", nargs="*", action="extend", metavar="KEY=VALUE", help="DataModule init overrides")
    q.set_defaults(func=cmd_zoo_release)
    q = sub.add_parser("distil", help="symbolic distillation of a trained model's learned terms")
    q.add_argument("name", help="checkpoint name, card path or URL")
    q.add_argument("--backend", default="auto", choices=("auto", "pysr", "sindy"),
                   help="symbolic regression: PySR where Julia runs, else SINDy (auto, the default)")
    q.add_argument("--fine-tune-epochs", type=int, default=20,
                   help="epochs of fine-tuning the formula's constants on the training data (0: none; default 20)")
    q.add_argument("--seed", type=int, default=0, help="seed of the regression and the fine-tuning (default 0)")
    q.add_argument("--out", help="folder for pareto.csv, equations.json and equations.tex")
    q.add_argument("--overwrite", action="store_true", help="replace those files where they exist")
    q.set_defaults(func=cmd_distil)
    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_cmd", required=True)
    q = data.add_parser("build", help="build (or rebuild with --force) a model's data set")
    q.add_argument("name", help="zoo model whose data set to build (hybridzoo zoo list)")
    q.add_argument("--force", action="store_true", help="rebuild even where a sound cached copy exists")
    q.add_argument("--data", nargs="*", action="extend", metavar="KEY=VALUE", help="DataModule init overrides")
    q.set_defaults(func=cmd_data_build)
    q = sub.add_parser("demo", help="train the UDE, distil it, print the equations and errors")
    q.add_argument("--log-dir", default="lightning_logs", help="TensorBoard log folder (default lightning_logs)")
    q.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hybridzoo`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in LIGHTNING_COMMANDS:
        return lightning_cli(args)
    asked = not args or args[0] in ("-h", "--help")
    if asked or args[0] not in TOOL_COMMANDS:
        if not asked:
            print(f"hybridzoo: unknown command {args[0]!r}", file=sys.stderr)
        print(__doc__.strip(), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    ns = tools_parser().parse_args(args)
    try:
        return ns.func(ns)
    except BrokenPipeError:  # the reader went away (`hybridzoo zoo show NAME | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 1
    except (ValueError, TypeError, OSError) as err:  # bad names, overrides, files: a message, not a traceback
        raise SystemExit(f"hybridzoo: {type(err).__name__}: {err}") from None
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a data build (which stops its XFOIL processes first)
        print("hybridzoo: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as err:
        if not isinstance(err, _reported_runtime_errors()):
            raise
        raise SystemExit(f"hybridzoo: {type(err).__name__}: {err}") from None


def _reported_runtime_errors() -> tuple[type[RuntimeError], ...]:
    """Runtime errors that say what the user lacks (PySR's Julia, XFOIL, a sound cache): one line, no traceback."""
    from hybridzoo.datamodules.cache import CacheError
    from hybridzoo.datamodules.xfoil import XfoilError
    from hybridzoo.zoo.symbolic_regression import BackendUnavailable

    return BackendUnavailable, XfoilError, CacheError


if __name__ == "__main__":
    raise SystemExit(main())
