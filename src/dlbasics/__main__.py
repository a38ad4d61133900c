"""``python -m dlbasics`` does what the ``dlbasics`` command does."""

from dlbasics.cli import main

if __name__ == "__main__":
    main()
