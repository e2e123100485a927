"""Command line of `dr9k`: not built yet; `shared.cli.unbuilt_app` answers every command with one line saying so
(`--help` and `--version` work). The method's verbs replace it when the package lands (API: shared/README.md)."""

import sys

from shared.cli import unbuilt_app

from dr9k import __version__

APP = unbuilt_app("dr9k", __version__, "Deep-research agents trained on synthesised multi-level search data (DR9K).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
