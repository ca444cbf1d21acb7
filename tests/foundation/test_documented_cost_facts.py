"""The billing facts spotcube encodes, against AWS's own documents (not against each other).

``tests/foundation/test_kept_libraries.py`` checks that the project's copies of a fact agree
with one another; here each fact is compared with a value transcribed from an AWS-authored
source, so a wrong number in the project fails even when every copy of it is wrong alike.
Sources, read on 2026-11-27:

* **S3 User Guide**, "Using Amazon S3 storage classes", table "Comparing the Amazon S3
  storage classes" (awsdocs/amazon-s3-userguide, doc_source/storage-class-intro.md, commit
  0bd3dc39ac84): minimum storage duration and minimum billable object size per class.
* **Amazon S3 pricing** (https://aws.amazon.com/s3/pricing/), US East (N. Virginia): the
  storage table (first 50 TB for Standard), its footnotes (40 KB of metadata per archived
  object, 8 KB at Standard and 32 KB at the archive rate; 128 KB minimum billable size for
  the IA classes and Glacier Instant Retrieval) and the "Requests & data retrievals" table
  ("Lifecycle transition requests into (per 1,000 requests)", "Data retrievals (per GB)").
  Prices change: a failure here after a price change means updating the project's numbers
  and this table together, with the new date.
* **EC2 User Guide**, "General Purpose SSD volumes" (awsdocs/amazon-ec2-user-guide,
  doc_source/general-purpose.md, commit 0147f878dcba): "a consistent baseline IOPS
  performance of 3,000 IOPS" and "a consistent baseline throughput performance of
  125 MiB/s, which is included with the price of storage".
"""

from __future__ import annotations

import pytest

from contract import costfacts
from infra import lifecycle

KB = 1024

# S3 User Guide, "Comparing the Amazon S3 storage classes": (min storage duration in days,
# min billable object size in KB); None where the table says "None".
STORAGE_CLASS_TABLE: dict[str, tuple[int | None, int | None]] = {
    "STANDARD": (None, None),
    "STANDARD_IA": (30, 128),
    "INTELLIGENT_TIERING": (None, None),
    "ONEZONE_IA": (30, 128),
    "GLACIER_IR": (90, 128),
    "GLACIER": (90, 40),  # S3 Glacier Flexible Retrieval
    "DEEP_ARCHIVE": (180, 40),
}

# Amazon S3 pricing, US East (N. Virginia): storage USD per GB-month (Standard and
# Intelligent-Tiering's Frequent Access tier: first 50 TB).
STORAGE_USD_PER_GB_MONTH = {
    "STANDARD": 0.023,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
}
# "Lifecycle transition requests into (per 1,000 requests)"
TRANSITION_INTO_USD_PER_1000 = {
    "INTELLIGENT_TIERING": 0.01,
    "STANDARD_IA": 0.01,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.02,
    "GLACIER": 0.03,
    "DEEP_ARCHIVE": 0.05,
}
# "Data retrievals (per GB)" of the classes a plain GET reads (no restore).
RETRIEVAL_USD_PER_GB = {"STANDARD_IA": 0.01, "ONEZONE_IA": 0.01, "GLACIER_IR": 0.03}
# "Monitoring and Automation, All Storage / Month (Objects > 128 KB)": per 1,000 objects.
IT_MONITORING_USD_PER_1000 = 0.0025


@pytest.mark.parametrize("storage_class", sorted(STORAGE_CLASS_TABLE))
def test_minimum_storage_duration_is_the_user_guides(storage_class: str) -> None:
    documented, _ = STORAGE_CLASS_TABLE[storage_class]
    assert lifecycle.MIN_STORAGE_DAYS[storage_class] == (documented or 0)


def test_small_object_classes_are_those_with_a_minimum_billable_size() -> None:
    documented = {c for c, (_, size) in STORAGE_CLASS_TABLE.items() if size is not None}
    assert documented == lifecycle.SMALL_OBJECT_PENALTY_CLASSES


def test_minimum_and_overhead_sizes_are_the_user_guides() -> None:
    ia_sizes = {STORAGE_CLASS_TABLE[c][1] for c in ("STANDARD_IA", "ONEZONE_IA", "GLACIER_IR")}
    archive_sizes = {STORAGE_CLASS_TABLE[c][1] for c in ("GLACIER", "DEEP_ARCHIVE")}
    assert ia_sizes == {lifecycle.MIN_ARCHIVE_OBJECT_BYTES // KB}
    assert archive_sizes == {lifecycle.ARCHIVE_OVERHEAD_BYTES // KB}
    # The pricing page's split of the same 40 KB: 8 KB at Standard, 32 KB at the archive rate.
    assert lifecycle.ARCHIVE_OVERHEAD_BYTES == (8 + 32) * KB


def test_storage_prices_are_the_pricing_pages() -> None:
    assert lifecycle.PRICE_PER_GB_MONTH == STORAGE_USD_PER_GB_MONTH


def test_transition_fees_are_the_pricing_pages() -> None:
    """Every class a lifecycle rule can move objects into pays per object moved."""
    assert lifecycle.TRANSITION_USD_PER_1000 == TRANSITION_INTO_USD_PER_1000
    assert set(TRANSITION_INTO_USD_PER_1000) == set(lifecycle.TRANSITION_CLASSES)


def test_retrieval_and_monitoring_fees_are_the_pricing_pages() -> None:
    assert lifecycle.RETRIEVAL_USD_PER_GB == RETRIEVAL_USD_PER_GB
    assert lifecycle.IT_MONITORING_USD_PER_1000_MONTH == IT_MONITORING_USD_PER_1000
    # The classes with a retrieval fee are the instant-read ones other than Standard and
    # Intelligent-Tiering ("There are no retrieval charges in S3 Intelligent-Tiering").
    assert set(RETRIEVAL_USD_PER_GB) == lifecycle.INSTANT_READ_CLASSES - {
        "STANDARD",
        "INTELLIGENT_TIERING",
    }


def test_gp3_baseline_is_the_ec2_user_guides() -> None:
    assert costfacts.GP3_BASELINE_IOPS == 3000
    # The guide says MiB/s, as the EC2 API's Throughput parameter counts it.
    assert costfacts.GP3_BASELINE_THROUGHPUT_MBPS == 125
