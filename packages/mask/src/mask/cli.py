"""Command line of `mask`: not built yet; `shared.cli.unbuilt_app` answers every command with one line saying so
(`--help` and `--version` work). The method's verbs replace it when the package lands (API: shared/README.md)."""

import sys

from shared.cli import unbuilt_app

from mask import __version__

APP = unbuilt_app("mask", __version__, "Multi-agent search with roles, memory and per-turn credit (MASK).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
