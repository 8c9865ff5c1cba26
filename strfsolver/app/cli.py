"""Command line (``strfsolver``, also ``python -m strfsolver``).

- ``strfsolver demo --logdir DIR``: the main job, a fit on the embedded synthetic data;
- ``strfsolver fit CONFIG``: fit a data file as a JSON/YAML config describes
  (see :py:mod:`strfsolver.app.fit_config`);
- ``strfsolver compare CONFIG --logdir DIR``: cross-validate several models and
  compare them (see :py:mod:`strfsolver.app.compare_config`);
- ``strfsolver predict MODEL DATA --out FILE`` / ``strfsolver evaluate MODEL DATA --out FILE``:
  a saved model's predictions / per-neuron scores on a data file (see :py:mod:`strfsolver.app.saved_models`);
- ``strfsolver list``: every registry's options.

``--logdir`` always names a folder that a command writes into, ``--out`` a
single output file. ``demo --out`` and ``compare --out``, the old spelling of
``--logdir``, are taken for one release (hidden, with a ``DeprecationWarning``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import List, Optional
from strfsolver.utils.checks import short_repr

__all__ = ["main", "build_parser"]

# the demo options the command line exposes, as run_demo names them
_DEMO_SIZES = ("n_neurons", "n_stims", "n_repeats", "n_freqs", "n_lags", "n_times")
_DEMO_TRAINING = ("max_epochs", "patience", "batch_size", "lr", "smoothness", "seed")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {short_repr(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {short_repr(text)}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


class _OldLogdir(argparse.Action):
    """``--out``, the old name of ``--logdir`` for ``demo`` and ``compare``: hidden, taken for one release."""

    def __call__(self, parser, namespace, values, option_string=None):
        from strfsolver.utils.deprecation import renamed

        with warnings.catch_warnings():
            warnings.simplefilter("always", DeprecationWarning)  # shown on the command line too, not only to Python callers
            setattr(namespace, self.dest, renamed(None, values, "--logdir", "--out", where=parser.prog))


def _add_logdir(parser: argparse.ArgumentParser, required: bool, help: str) -> None:
    """``--logdir DIR`` and its hidden old name ``--out`` (one or the other; both is an error)."""
    either = parser.add_mutually_exclusive_group(required=required)
    either.add_argument("--logdir", metavar="DIR", help=help)
    either.add_argument("--out", dest="logdir", action=_OldLogdir, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``strfsolver`` command."""
    from strfsolver._version import __version__
    from strfsolver.app.demo import DEFAULTS

    parser = argparse.ArgumentParser(prog="strfsolver", description="Fit STRF encoding models to neural responses.")
    parser.add_argument("--version", action="version", version=f"strfsolver {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="fit linear STRFs to the embedded synthetic population and write a report",
        description="Fit a linear STRF model to the embedded synthetic population with the population solver; "
        "write summary.csv, history.csv, strfs.png and learning_curves.png to the folder --logdir and print a table.",
    )
    _add_logdir(demo, True, "the folder to write into (created)")
    demo.add_argument("--quick", action="store_true", help="a small problem that runs in seconds")
    sizes = demo.add_argument_group("sizes (defaults: the full demo; --quick makes them smaller)")
    for name in _DEMO_SIZES:
        sizes.add_argument("--" + name.replace("_", "-"), type=_positive_int, default=None, help=f"default {DEFAULTS[name]}")
    training = demo.add_argument_group("training")
    training.add_argument("--max-epochs", type=_positive_int, default=None, help=f"default {DEFAULTS['max_epochs']}")
    training.add_argument("--patience", type=_positive_int, default=None, help=f"default {DEFAULTS['patience']}")
    training.add_argument("--batch-size", type=_positive_int, default=None, help=f"default {DEFAULTS['batch_size']}")
    training.add_argument("--lr", type=_positive_float, default=None, help=f"default {DEFAULTS['lr']}")
    training.add_argument("--smoothness", type=float, default=None, help=f"weight of the smooth-strf penalty, 0 for none; default {DEFAULTS['smoothness']}")
    training.add_argument("--seed", type=int, default=None, help=f"default {DEFAULTS['seed']}")
    demo.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    fit = commands.add_parser(
        "fit",
        help="fit a model to a data file as a JSON or YAML config describes",
        description="Fit the model and solver a config names to its data file (.npz or .nwb) under each of its "
        "seeds; write summary.csv, history.csv, strfs.png, learning_curves.png and seeds/ to its 'logdir' folder. "
        "Config keys: " + ", ".join(_config_keys()) + ".",
    )
    fit.add_argument("config", help="path of the JSON (.json) or YAML (.yaml, .yml) config")
    fit.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fit.add_argument("--resume", action="store_true", help="continue an interrupted fit from the checkpoints in its 'logdir' folder")

    compare = commands.add_parser(
        "compare",
        help="cross-validate several models on a data file and compare them neuron by neuron",
        description="Fit every model a config names on the same stimulus-grouped folds; write scores.csv, "
        "summary.csv, pairs.csv, models.csv, figures and report.html to the folder --logdir. Finished folds are kept under "
        "folds/, so running the command again continues an interrupted comparison.",
    )
    compare.add_argument("config", help="path of the JSON (.json) or YAML (.yaml, .yml) config")
    _add_logdir(compare, False, "the folder to write into (default: the config's 'logdir')")
    compare.add_argument("--workers", type=_positive_int, default=None, help="fit folds on this many worker processes")
    compare.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    compare.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    for name, verb, output in (("predict", "predict the responses to every stimulus of", "predictions (.npz)"),
                               ("evaluate", "score per neuron on", "per-neuron table (.csv)")):
        saved = commands.add_parser(
            name, help=f"{verb} a data file with a saved model",
            description=f"Load a model saved by 'strfsolver fit' (its LOGDIR/model folder) and {verb} a .npz or .nwb file; "
            f"write the {output} to the file --out.",
        )
        saved.add_argument("model", help="folder of the saved model (config.json and model.safetensors)")
        saved.add_argument("data", help="the .npz or .nwb data file")
        saved.add_argument("--out", required=True, metavar="FILE", help=f"the file of the {output} to write (a file, not a folder)")
        saved.add_argument("--device", default="cpu", help="torch device (default cpu)")

    commands.add_parser(
        "list",
        help="print the registered solvers, models, prefilters and losses",
        description="Print the names every registry accepts, one registry per line.",
    )
    return parser


def _config_keys():
    from strfsolver.app.fit_config import CONFIG_KEYS

    return list(CONFIG_KEYS)


def _list_options() -> str:
    import strfsolver

    lines = []
    for name in ("solver", "models", "prefilters", "losses"):
        registry = getattr(strfsolver, name)
        lines.append(f"{name + ':':<12}{', '.join(registry.get_options())}")
        # other libraries' names of the same entries (deepSTRF's zoo), which init and configs accept too
        known = [f"{foreign}={target}" for foreign, (target, _, _) in registry.get_aliases().items() if target is not None]
        if known:
            lines.append(f"{'':<12}also: {', '.join(known)}")
    return "\n".join(lines)


def _user_errors() -> tuple:
    """The exceptions that mean bad input or a refused run, not a bug: one line and exit code 2."""
    from strfsolver.solver import LogdirInUseError, TrainingDivergedError

    return (ValueError, KeyError, OSError, ImportError, TrainingDivergedError, LogdirInUseError)


def _one_line(error: BaseException) -> str:
    # a KeyError's str() is its repr, quotes included
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status.

    Every subcommand's bad input (a config key, a data file, an output
    path, a locked logdir, a diverged fit) ends in one line on stderr,
    ``strfsolver <command>: error: ...``, and exit status 2, as argparse
    does for bad arguments; anything else is a bug and keeps its traceback.
    Ctrl-C (``KeyboardInterrupt``) ends in one line, ``strfsolver <command>:
    interrupted``, and exit status 130 (128 + SIGINT, as shells report it);
    files already written stay as they are, so a ``fit`` with a ``logdir``
    continues with ``--resume`` and ``compare`` keeps its finished folds.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.
    """
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except _user_errors() as error:
        print(f"strfsolver {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"strfsolver {args.command}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` names; the errors are :py:func:`main`'s to report."""
    if args.command == "demo":
        from strfsolver.app.demo import run_demo

        options = {
            name: getattr(args, name)
            for name in _DEMO_SIZES + _DEMO_TRAINING
        }
        run_demo(args.logdir, quick=args.quick, plots=not args.no_plots, progress=not args.no_progress, **options)
    elif args.command == "fit":
        from strfsolver.app.fit_config import run_fit

        run_fit(args.config, progress=not args.no_progress, plots=not args.no_plots, resume=args.resume)
    elif args.command == "compare":
        from strfsolver.app.compare_config import run_compare

        run_compare(args.config, args.logdir, workers=args.workers or 0, progress=not args.no_progress, plots=not args.no_plots)
    elif args.command in ("predict", "evaluate"):
        from strfsolver.app import saved_models

        run = saved_models.run_predict if args.command == "predict" else saved_models.run_evaluate
        run(args.model, args.data, args.out, device=args.device)
    elif args.command == "list":
        print(_list_options())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
