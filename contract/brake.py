"""The brake's tag on the fleet's Auto Scaling group (ADR 0002).

The brake Lambda sets it when it scales the group to zero; while it is on, the deny
statements of guarded keys and of the workers' role refuse anything that would bring capacity
or scale-in protection back (infra/iam.py, infra/guards.py); only ``spotcube resume``, run by
the deploying identity, removes it after re-arming the budget. One home for the Lambda (whose
zip ships this package, infra/lambdafn.py), the stack's policies and the operator CLI.
"""

from __future__ import annotations

BRAKE_TAG = "spotcube:brake"
BRAKE_TAG_VALUE = "on"
