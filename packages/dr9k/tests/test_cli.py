"""The unbuilt package's CLI states its status and exits non-zero."""

import pytest
from dr9k.cli import main


def test_help_says_not_built(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "not built yet" in " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_run_exits_nonzero(capsys):
    assert main([]) == 2
    assert "not built yet" in capsys.readouterr().err
