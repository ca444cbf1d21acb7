"""The one table of AWS error codes the operator CLI classifies, by what they mean to a user.

:mod:`spotcube.cli` turns each class into its one-line message and exit status;
:mod:`spotcube.account.session` ends an account check at the first unusable credential with
the same set. (The worker, in payload, and the Lambdas classify their own few codes: they
import nothing from spotcube.)
"""

from __future__ import annotations

# ClientError codes that mean "these credentials cannot be used here".
BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
        "InvalidToken",
    }
)
DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AllAccessDisabled"}
)
# A stack resource that is not where the outputs say: a wrong endpoint or stack.
MISSING_RESOURCE = frozenset(
    {
        "NoSuchBucket",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "ValidationError",  # autoscaling: "AutoScalingGroup name not found"
    }
)
BUSY = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "503",
        "500",
    }
)
