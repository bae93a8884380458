"""``python -m revoker.emulator``: the ``revoker emulator`` command, standalone."""

from revoker.emulator.command import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m revoker.emulator")
