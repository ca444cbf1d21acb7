"""``python -m payload SUBCOMMAND --help`` reads as plain text: no Sphinx markup anywhere."""

from __future__ import annotations

import argparse
import re

import pytest

from payload.cli import build_parser, plain_text

MARKUP = re.compile(r"``|:(class|func|mod|data|attr|meth|exc|obj|ref):`")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **sub.choices}


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_help_has_no_sphinx_markup(name: str) -> None:
    text = _subparsers()[name].format_help()
    assert not MARKUP.search(text), MARKUP.search(text)


@pytest.mark.parametrize(
    ("doc", "plain"),
    [
        ("The same :class:`~payload.jobs.image.ImageJob` runs", "The same ImageJob runs"),
        (":func:`payload.store.faultpoint`", "payload.store.faultpoint"),
        ("to ``DIR/.chunks``; (``--fresh``)", "to DIR/.chunks; (--fresh)"),
        (":class:`the job <payload.jobs.image.ImageJob>`", "the job"),
    ],
)
def test_plain_text(doc: str, plain: str) -> None:
    assert plain_text(doc) == plain
