"""``python -m dlbasics`` does what the ``dlbasics`` command does."""

from dlbasics.cli import run

if __name__ == "__main__":
    run()
