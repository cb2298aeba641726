"""``python -m irad``: the ``irad`` command, for environments where the console script is not installed."""

from .cli import main

if __name__ == "__main__":
    main()
