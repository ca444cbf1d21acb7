"""'Did you mean ...?' for misspelt options, subcommands, choices and instance types.

argparse suggests close matches itself only from Python 3.14 (``suggest_on_error``); this
gives the same on 3.11+ with :mod:`difflib`, whose ratio (0.6 by default) is what argparse
3.14 uses too.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable
from typing import NoReturn

_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.+)$")
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)'")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option of ``parser`` and of its subcommands (extras are reported by the top)."""
    options: set[str] = set()
    for action in parser._actions:
        options.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= _option_strings(sub)
    return options


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        if action.choices is not None:
            found.update(str(c) for c in action.choices)
    return found


class SuggestingParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors end with the closest valid spelling."""

    def error(self, message: str) -> NoReturn:
        super().error(self.suggest(message))

    def suggest(self, message: str) -> str:
        """``message`` with the closest valid spelling of what it says is wrong, if any."""
        unknown = _UNRECOGNIZED.search(message)
        if unknown:
            options = _option_strings(self)
            hints = [
                did_you_mean(word.split("=", 1)[0], options)
                for word in unknown.group(1).split()
                if word.startswith("-")
            ]
            message += "".join(hints)
        else:
            choice = _INVALID_CHOICE.search(message)
            if choice:
                message = re.sub(
                    r" \(choose from",
                    did_you_mean(choice.group(1), _choices(self)) + " (choose from",
                    message,
                    count=1,
                )
        return message
