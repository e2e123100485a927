"""Command line of `arr`: not built yet; `shared.cli.unbuilt_app` answers every command with one line saying so
(`--help` and `--version` work). The method's verbs replace it when the package lands (API: shared/README.md)."""

import sys

from shared.cli import unbuilt_app

from arr import __version__

APP = unbuilt_app("arr", __version__, "Reasoner-verifier RAG with process-aware rewards (ARR).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
