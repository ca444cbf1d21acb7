"""The one way spotcube builds AWS clients: one boto3 session per profile and process.

A session caches the service models and endpoint rules (about half a second per client to
load), and ``profile=None`` follows boto3's default chain, ``AWS_PROFILE`` included. Every
command that reaches a stack (submit, status, logs, down, report, plan, check, resume) makes
its clients from here, so ``--profile`` and ``AWS_PROFILE`` mean the same thing everywhere.
"""

from __future__ import annotations

import functools

import boto3


@functools.cache
def aws_session(profile: str | None) -> boto3.Session:
    """The process's session for ``profile`` (``None``: the default credential chain).

    Raises botocore's ``ProfileNotFound`` for a profile that is not configured; the CLI turns
    it into one line naming the profile (spotcube.cli).
    """
    return boto3.Session(profile_name=profile)
