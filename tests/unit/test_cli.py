"""The ``video3dcnn`` parser: every subcommand registered, unknown words kept only where a subcommand asks for them."""

from __future__ import annotations

import pytest

from video3dcnn import __version__
from video3dcnn.cli import SUBCOMMANDS, ArgumentParser, build_parser, main


def test_every_subcommand_is_registered_and_the_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert isinstance(parser, ArgumentParser)
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--help"])
    assert caught.value.code == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SUBCOMMANDS)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"video3dcnn {__version__}"


def test_train_keeps_the_words_no_flag_claims() -> None:
    args = build_parser().parse_args(["train", "--epochs", "3", "--batchsize", "8"])
    assert args.epochs == "3" and args.unknown_arguments == ["--batchsize", "8"]


def test_other_subcommands_refuse_unknown_words_with_a_usage_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["process", "--input", "in", "--colour"])
    assert caught.value.code == 2
    assert "unrecognized arguments: --colour" in capsys.readouterr().err

