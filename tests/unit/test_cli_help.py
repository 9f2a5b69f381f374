"""`showrunner train --help` lists the models there are, instead of asking for a model."""

from __future__ import annotations

import pytest

from engine import cli


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_train_help_lists_the_models_the_installed_pieces_train(capsys, flag):
    assert cli.main(["train", flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: showrunner train MODEL")
    assert "models: ear, vae" in out and "showrunner train MODEL --help" in out


def test_train_without_a_model_is_bad_input(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train"])
    assert exited.value.code == 2
    assert "see 'showrunner train --help'" in capsys.readouterr().err
