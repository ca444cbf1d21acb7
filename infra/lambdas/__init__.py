"""Lambda handlers, each packaged with the ``contract`` package by the Pulumi program.

Each handler imports only the standard library, boto3 (the Lambda runtime provides both) and
``contract`` (shipped in every zip: infra/lambdafn.py), and reads its endpoint from
``AWS_ENDPOINT_URL`` like every boto3 client, so tests run them against the moto server
unchanged.
"""

from pathlib import Path

LAMBDA_DIR = Path(__file__).resolve().parent
