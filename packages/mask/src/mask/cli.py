"""Command line of `mask`: the package is not built yet, and its CLI says exactly that.

Built on the workspace's parent CLI (`shared.cli`) like every package: when the method lands, its verbs go into
`APP.verbs` and `status` is dropped. Until then `mask --help` and `mask --version` work, and any command prints
one line saying the package is not built yet, with exit status 2.
"""

import sys

from shared.cli import App

from mask import __version__

STATUS = "not built yet: this release ships only the package skeleton, without the method's commands"
APP = App(prog="mask", version=__version__, verbs=[], status=STATUS,
          description="Multi-agent search with roles, memory and per-turn credit (MASK).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
