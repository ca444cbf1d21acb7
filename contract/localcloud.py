"""What the embedded local cloud (moto on 127.0.0.1) is: its region and placeholder keys.

The operator CLI's stack lookup (``spotcube.stack``), its AWS session and the local cloud that
serves them (``spotcube.local``) all need these; here they depend on none of the three. The
stack names the local cloud creates are :data:`contract.names.LOCAL_NAMES`.
"""

from __future__ import annotations

LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these only keep botocore from searching for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
