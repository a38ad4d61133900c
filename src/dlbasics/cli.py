"""The ``dlbasics`` command: one entry point for the Lightning subcommands and the lessons.

This module imports neither Lightning nor torch: ``dlbasics``, ``dlbasics --help``, ``dlbasics --version`` and
``dlbasics lesson --list`` answer at once, and each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import sys

from dlbasics import __version__
from dlbasics.user_errors import is_user_error, one_line, wants_debug

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (with validation) from a config: dlbasics fit --config configs/moons_mlp.yaml",
    "validate": "evaluate a checkpoint on the validation split: ... validate --config C --ckpt_path P",
    "test": "evaluate a checkpoint on the test split: dlbasics test --config C --ckpt_path P",
    "predict": "predict with a checkpoint: dlbasics predict --config C --ckpt_path P",
}
SUBCOMMANDS = {
    **LIGHTNING_SUBCOMMANDS,
    "lr-find": "learning-rate range test on a config's model, weights restored: dlbasics lr-find --config C",
    "lesson": "rerun a lesson as Lightning runs, with figures and a summary: dlbasics lesson all",
}


def usage() -> str:
    rows = "\n".join(f"  {name:<9} {text}" for name, text in SUBCOMMANDS.items())
    return (f"usage: dlbasics [-h] [--version] {{{','.join(SUBCOMMANDS)}}} ...\n\n"
            "Deep-learning fundamentals as PyTorch Lightning experiments.\n\n"
            f"subcommands:\n{rows}\n\n"
            "options:\n  -h, --help  show this message and exit\n  --version   show the version and exit\n\n"
            "Each subcommand has its own --help (dlbasics fit --help, dlbasics lesson --help). A bad setting prints\n"
            "one line; --debug (or DLBASICS_DEBUG=1) shows the full traceback.")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status (``sys.exit`` is called by ``run``)."""
    debug, argv = wants_debug(sys.argv[1:] if argv is None else list(argv))
    command = argv[0] if argv else None
    if command in ("-h", "--help"):
        print(usage())
        return 0
    if command is None:
        print(f"{usage()}\n\ndlbasics: name a subcommand", file=sys.stderr)
        return 2
    if command == "--version":
        print(f"dlbasics {__version__}")
        return 0
    if command in SUBCOMMANDS:
        try:
            return run_subcommand(command, argv)
        except Exception as error:  # noqa: BLE001 (a bug is raised again, traceback and all)
            if debug or not is_user_error(error):
                raise
            print(f"dlbasics {command}: error: {one_line(error)}\n(add --debug for the full traceback)",
                  file=sys.stderr)
            return 2
    print(f"{usage()}\n\ndlbasics: {command!r} is not a subcommand; choose from: {', '.join(SUBCOMMANDS)}",
          file=sys.stderr)
    return 2


def run_subcommand(command: str, argv: list[str]) -> int:
    if command == "lesson":
        from dlbasics.lessons.cli import lesson_main

        return lesson_main(argv[1:])
    if command == "lr-find":
        from dlbasics.lr_find import lr_find_main

        return lr_find_main(argv[1:])
    from dlbasics.lightning_cli import fit_main

    return fit_main(argv)


def run() -> None:
    sys.exit(main())
