"""Lambda handlers, packaged as single files by the Pulumi program.

Each handler imports only the standard library and boto3 (the Lambda runtime provides both)
and reads its endpoint from ``AWS_ENDPOINT_URL`` like every boto3 client, so tests run them
against the moto server unchanged.
"""

from pathlib import Path

LAMBDA_DIR = Path(__file__).resolve().parent
