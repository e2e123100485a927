"""Command line of `huijin`: this package is not built yet, and its CLI says exactly that."""

import argparse
import sys

STATUS = "not built yet: only the package skeleton exists in this release (see the workspace issues)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="huijin",
        description="Staged domain training: CPT, SFT and RL stages with per-stage evaluation (Huijin). Status: " + STATUS + ".",
    )
    parser.parse_args(argv)
    print(f"huijin: {STATUS}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
