"""``python -m transfertune.history import-history ... | recommend ...`` from any folder."""

from transfertune.history.cli import main

if __name__ == "__main__":
    main()
