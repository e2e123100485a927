"""The README's core self-check runs every step OK end to end (slow: it builds a model and loads MiniLM)."""

import pytest
from shared.selfcheck import main


@pytest.mark.slow
def test_selfcheck_passes(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "selfcheck: 5/5 steps OK" in out
    assert (tmp_path / "results.json").is_file()
