"""Command line of `rose`: this package is not built yet, and its CLI says exactly that."""

import argparse
import sys

STATUS = "not built yet: only the package skeleton exists in this release (see the workspace issues)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rose",
        description="Tree rollouts with semantic-entropy branching and segment advantages (ROSE). Status: " + STATUS + ".",
    )
    parser.parse_args(argv)
    print(f"rose: {STATUS}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
