"""Stack configs the program tests build: minimal, full, existing raw bucket, on-demand base."""

from __future__ import annotations

from typing import Any

MINIMAL: dict[str, Any] = {
    "owner": "alice",
    "budget": {"monthlyUsd": 150, "emails": ["alice@example.org"]},
}

FULL: dict[str, Any] = {
    "owner": "bob-lab",
    "region": "eu-west-1",
    "ami": "ami-0123456789abcdef0",
    "budget": {
        "monthlyUsd": 1200,
        "emails": ["bob@example.org", "pi@example.org"],
    },
    "fleet": {
        "instanceTypes": ["c6i.8xlarge", "c6a.8xlarge", "c7i.8xlarge", "c5a.8xlarge"],
        "maxSize": 40,
        "maxSpotPrice": 1.1,
        "checkpointGraceSeconds": 600,
        "rootVolumeGib": 100,
        "capacityRebalance": False,
    },
    "data": {
        "checkpointExpireDays": 20,
        "products": {
            "transitions": [
                {"days": 30, "storageClass": "STANDARD_IA"},
                {"days": 61, "storageClass": "GLACIER"},
                {"days": 152, "storageClass": "DEEP_ARCHIVE"},
            ],
            "expireDays": 1825,
        },
        "raw": {"transitions": [{"days": 60, "storageClass": "GLACIER_IR"}], "expireDays": 400},
    },
    "queue": {"maxReceiveCount": 8, "visibilityTimeoutSeconds": 1800},
}

EXISTING_RAW: dict[str, Any] = {
    **MINIMAL,
    "owner": "carol",
    "data": {"rawBucket": "mwa-group-archive", "rawPrefix": "phase1/"},
}

ON_DEMAND_BASE: dict[str, Any] = {
    **MINIMAL,
    "owner": "dan",
    "fleet": {"onDemandBase": 2, "maxSize": 6},
}

ALL = {
    "minimal": (MINIMAL, "dev"),
    "full": (FULL, "prod"),
    "existing-raw": (EXISTING_RAW, "mwa"),
    "on-demand-base": (ON_DEMAND_BASE, "dev"),
}
