"""Every subcommand reports an operator's mistake in one line on stderr with status 2, never a traceback;
the traceback is logged at DEBUG."""

from __future__ import annotations

import logging

import pytest

from hf_captioners.commands import main


def _mistakes(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {
        "toyworld": ["toyworld", "--out", str(a_file / "world"), "--train", "2", "--eval", "2", "--backbone", "2",
                     "--no-progress"],
        "pretrain-backbones": ["pretrain-backbones", "--toyworld", str(tmp_path / "none"), "--out", str(tmp_path / "bb"),
                               "--fast", "--no-progress"],
        "evaluate": ["evaluate", "--baseline", "alt_text", "--ft-json", str(tmp_path / "none.json"), "--out",
                     str(tmp_path / "eval")],
        "convert": ["convert", "clipcap", str(tmp_path / "none.pt"), str(tmp_path / "out"), "--clip", str(tmp_path)],
        "push": ["push", str(tmp_path / "none"), "me/x", "--dry-run", str(tmp_path / "dry")],
        "caption-shards": ["caption-shards", str(tmp_path / "none"), str(tmp_path / "none.tar"), "--out", str(tmp_path / "o")],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["toyworld", "pretrain-backbones", "evaluate", "convert", "push", "caption-shards"])
def test_operator_mistake_is_one_line_and_status_2(command, tmp_path, capsys):
    assert main(_mistakes(tmp_path)[command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if "error" in line.lower()]
    assert len(lines) == 1 and f"{command}: error: " in lines[0], err
    assert "Traceback" not in "\n".join(err)


def test_the_traceback_is_logged_at_debug(tmp_path, capsys, caplog):
    with caplog.at_level(logging.DEBUG, logger="hf_captioners.commands"):
        assert main(["--log-level", "DEBUG", *_mistakes(tmp_path)["convert"]]) == 2
    assert any(record.exc_info for record in caplog.records if record.name == "hf_captioners.commands")
    assert "convert: error: " in capsys.readouterr().err


def test_a_bug_is_not_dressed_up_as_an_operator_error(monkeypatch, tmp_path):
    import hf_captioners.commands.convert as convert_cli

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(convert_cli, "run", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(_mistakes(tmp_path)["convert"])
