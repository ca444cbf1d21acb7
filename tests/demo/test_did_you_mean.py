"""Misspelt options, subcommands, choices and instance types get the right spelling back.

Issue 23's examples (``--jbos``, ``m5.4xlarg``) and, for every long option of every
subcommand, the same option with two adjacent letters swapped (the commonest typo): the
one-line usage error must name the option that was meant.
"""

from __future__ import annotations

import argparse

import pytest

from spotcube.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _long_options() -> list[tuple[str, str]]:
    found = []
    for command in _subcommands(build_parser()):
        # The CLI builds the full options of the named subcommand only.
        subparser = _subcommands(build_parser([command]))[command]
        if any(a.required and a.option_strings for a in subparser._actions):
            continue  # argparse reports the missing required option first (plan)
        for action in subparser._actions:
            for option in action.option_strings:
                if option.startswith("--") and len(option) >= 7 and option != "--debug":
                    found.append((command, option))
    return found


def _transposed(option: str) -> str:
    i = len(option) // 2
    return option[:i] + option[i + 1] + option[i] + option[i + 2 :]


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["plan", "--jobs", "1", "--runtime", "9h", "--rate", "9%/h", "--jbos", "3"], "--jobs"),
        (["stauts"], "status"),
        (["demo", "--kind", "slftest"], "selftest"),
        (["plan", "--jobs", "1", "--runtime", "9h", "--rate", "9%/h", "--instance", "m5.4xlarg"],
         "m5.4xlarge"),
    ],
)  # fmt: skip
def test_issue_examples(argv: list[str], meant: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"(did you mean {meant!r}?)" in err
    assert len(err.strip().splitlines()[-1]) > 0


@pytest.mark.parametrize(("command", "option"), _long_options())
def test_a_transposed_option_is_suggested_back(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = _transposed(option)
    if typo == option:
        pytest.skip("the swap changes nothing")
    with pytest.raises(SystemExit):
        build_parser([command]).parse_args([command, typo, "x"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"(did you mean {option!r}?)" in err, err


def test_nothing_close_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--zzzzqq"]) == 2
    assert "did you mean" not in capsys.readouterr().err
