"""Command line of `dr9k`: this package is not built yet, and its CLI says exactly that."""

import argparse
import sys

STATUS = "not built yet: only the package skeleton exists in this release (see the workspace issues)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dr9k",
        description="Deep-research agents trained on synthesised multi-level search data (DR9K). Status: " + STATUS + ".",
    )
    parser.parse_args(argv)
    print(f"dr9k: {STATUS}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
