"""A user's mistake (a bad value, a missing file) as one line on stderr; a bug keeps its traceback.

``dlbasics`` catches the errors a user's input raises, prints ``dlbasics <subcommand>: error: <message>`` with the
message that names the bad value (the innermost one, not the parser's wrapping of it), and exits with status 2.
``--debug`` anywhere on the command line, or ``DLBASICS_DEBUG=1`` in the environment, shows the full traceback.
"""

from __future__ import annotations

import argparse
import os


class UserError(Exception):
    """Base of the project's errors that a user's input or files cause (not bugs): shown as one line."""


# What a user's input raises: parse errors, the settings' checks (ValueError), files that are not there or unusable.
USER_ERRORS = (argparse.ArgumentError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, UserError)
# Lines of jsonargparse's wrapping that say nothing about the bad value.
NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value",
         "- Expected a <class 'NoneType'>")
HINTS = {
    "the following arguments are required": "give a config, e.g. --config configs/moons_mlp.yaml (one per lesson run "
                                            "in configs/), or see --help; --model.help CLASS and --data.help CLASS "
                                            "list a class's settings",
    # Lightning's refusal of --trainer.precision beside a config's precision plugin (configs/mnist_cnn.yaml's).
    "` and `plugins=": "the config's trainer.plugins chooses the precision (dlbasics.precision.BF16WhereNative in "
                       "configs/mnist_cnn.yaml); add --trainer.plugins=null to name the precision yourself",
}


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` comes from the user's input, not from a bug (Lightning's own refusals count too)."""
    return isinstance(error, USER_ERRORS) or any(cls.__name__ == "MisconfigurationException"
                                                for cls in type(error).__mro__)


def wants_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether to show tracebacks, and ``argv`` without the ``--debug`` flag."""
    rest = [arg for arg in argv if arg != "--debug"]
    return len(rest) < len(argv) or os.environ.get("DLBASICS_DEBUG") == "1", rest


def one_line(error: BaseException) -> str:
    """The message that names the bad value: the innermost error's, without the parser's wrapping."""
    while isinstance(error, ValueError) and isinstance(error.__cause__ or error.__context__, ValueError):
        error = error.__cause__ or error.__context__
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line.removeprefix("- ") for line in lines if line and not line.startswith(NOISE)]
    message = " ".join(kept) or type(error).__name__
    hints = [hint for cue, hint in HINTS.items() if cue in message]
    return "; ".join([message, *hints])
