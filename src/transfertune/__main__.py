"""``python -m transfertune`` runs the Kedro CLI of this project."""

import sys
from pathlib import Path

from kedro.framework.project import configure_project


def main(*args, **kwargs):
    from kedro.framework.cli import main as kedro_main

    configure_project(Path(__file__).parent.name)
    sys.exit(kedro_main(*args, **kwargs))


if __name__ == "__main__":
    main()
