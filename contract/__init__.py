"""Facts every part of spotcube shares, each with one home: the contract between the parts.

The worker's payload, the Pulumi stack (infra) and the operator CLI (spotcube) must agree on
names, layouts, settings and prices; when each kept its own copy, the copies drifted (plan and
the brake priced one instance two ways). Every such fact is defined once here and imported by
all three. This package sits below all of them: it imports only the standard library (no
payload, infra or spotcube, no boto3, no numpy), which the import-linter contracts in
pyproject.toml check, so the Lambda handlers and ``--help`` can import it for free.

Modules hold facts, not behaviour: a value, a record, a pure function of them.
"""
