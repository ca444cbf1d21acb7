"""detect-secrets plugin: AWS secret keys written unquoted, as in ~/.aws/credentials or .env.

detect-secrets' own AWS detector finds access key ids anywhere but secret keys only inside
quotes; a pasted credentials file (``aws_secret_access_key = ...``) is the common leak.
"""

import re

from detect_secrets.plugins.base import RegexBasedDetector


class AwsUnquotedSecretKeyDetector(RegexBasedDetector):
    """Scans for ``aws_secret_access_key = <40 chars>`` with or without quotes."""

    secret_type = "AWS Secret Access Key (credentials-file form)"  # pragma: allowlist secret

    denylist = (
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
    )
