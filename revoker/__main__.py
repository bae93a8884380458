"""``python -m revoker``."""

from revoker.cli import main

if __name__ == "__main__":
    main()
