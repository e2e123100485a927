"""Command line of `huijin`: the package is not built yet, and its CLI says exactly that.

Built on the workspace's parent CLI (`shared.cli`) like every package: when the method lands, its verbs go into
`APP.verbs` and `status` is dropped. Until then `huijin --help` and `huijin --version` work, and any command prints
one line saying the package is not built yet, with exit status 2.
"""

import sys

from shared.cli import App

from huijin import __version__

STATUS = "not built yet: this release ships only the package skeleton, without the method's commands"
APP = App(prog="huijin", version=__version__, verbs=[], status=STATUS,
          description="Staged domain training: CPT, SFT and RL stages with per-stage evaluation (Huijin).")


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
