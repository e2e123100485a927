"""The two-role example program of shared/README.md runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_two_role_example_runs(capsys):
    text = README.read_text()
    match = re.search(r"<!-- example: two-roles -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "the two-role example block is missing from shared/README.md"
    exec(compile(match.group(1), str(README), "exec"), {"__name__": "readme_example"})
    rounds, rows = capsys.readouterr().out.strip().split(" ", 1)
    assert rounds == "2" and rows == "[2, 2, 2]"
