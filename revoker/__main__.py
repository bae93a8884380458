"""``python -m revoker``."""

from revoker.cli import run

if __name__ == "__main__":
    run()
