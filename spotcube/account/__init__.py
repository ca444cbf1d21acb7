"""Read-only checks of a user's AWS account and live stack, and releasing the brake.

``spotcube preflight`` (before ``pulumi up``), ``spotcube check`` (after it) and ``spotcube
resume`` (after the brake) share the result type of :mod:`spotcube.account.results` and the
client factory of :mod:`spotcube.account.session`, in the spirit of AWS ParallelCluster's
configuration validators: each check is a small function that returns one typed result with
what it saw and how to fix it.
"""
