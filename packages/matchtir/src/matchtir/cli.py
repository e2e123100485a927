"""Command line of `matchtir`: this package is not built yet, and its CLI says exactly that."""

import argparse
import sys

STATUS = "not built yet: only the package skeleton exists in this release (see the workspace issues)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="matchtir",
        description="Bipartite-matching turn-level rewards for tool-integrated reasoning (MatchTIR). Status: " + STATUS + ".",
    )
    parser.parse_args(argv)
    print(f"matchtir: {STATUS}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
