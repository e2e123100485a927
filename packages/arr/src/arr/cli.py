"""Command line of `arr`: the package is not built yet, and its CLI says exactly that.

Built on the workspace's parent CLI (`shared.cli`) like every package: when the method lands, its verbs go into
`APP.verbs` and `status` is dropped. Until then `arr --help` and `arr --version` work, and any command prints
one line saying the package is not built yet, with exit status 2.
"""

import sys

from shared.cli import App

from arr import __version__

STATUS = "not built yet: this release ships only the package skeleton, without the method's commands"
APP = App(prog="arr", version=__version__, verbs=[], status=STATUS,
          description="Reasoner-verifier RAG with process-aware rewards (ARR).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
