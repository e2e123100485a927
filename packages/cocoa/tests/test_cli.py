"""The unbuilt package's CLI states its status and exits non-zero."""

import pytest
from cocoa.cli import main


def test_help_says_not_built(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "not built yet" in capsys.readouterr().out


def test_run_exits_nonzero(capsys):
    assert main([]) == 2
    assert "not built yet" in capsys.readouterr().err
