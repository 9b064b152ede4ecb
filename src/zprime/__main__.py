"""The ``zprime`` command (``zprime ...`` or ``python -m zprime ...``).

The command line imports numpy, matplotlib, pyarrow and the analyses (about 2 s): a Ctrl-C
during those imports would print a traceback of the import machinery, so this launcher turns
it into the same one line and exit status 130 as an interrupt while a command runs
(:func:`zprime.cli.main`).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Import the command line and run it; an interrupt while importing is one line."""
    try:
        from zprime.cli import main as cli_main  # lazy: the import is what is guarded
    except KeyboardInterrupt:
        print("interrupted: nothing was started", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
