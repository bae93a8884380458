"""``python -m revoker.emulator``: the ``revoker emulator`` command, standalone."""

import sys

import click

from revoker.emulator.command import emulator
from revoker.errors import RevokerError

if __name__ == "__main__":
    try:
        emulator(prog_name="python -m revoker.emulator")
    except RevokerError as exc:  # the extra is missing: a message, not a traceback
        click.echo(f"revoker: error: {exc}", err=True)
        sys.exit(exc.exit_code)
