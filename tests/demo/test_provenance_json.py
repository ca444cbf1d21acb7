"""provenance.json stores JSON values as values, not as JSON text inside strings (issue 23)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payload.provenance import write_provenance_json

leaf = st.one_of(st.integers(-5, 5), st.text(max_size=5), st.booleans())
nested = st.recursive(
    st.dictionaries(st.text(max_size=4), leaf, max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _no_json_in_strings(value: object) -> bool:
    if isinstance(value, dict):
        return all(_no_json_in_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_json_in_strings(v) for v in value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            json.loads(value)
        except ValueError:
            return True
        return False
    return True


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(identity=nested, beyond=nested, plain=st.text(max_size=8))
def test_json_values_stay_values(tmp_path: Path, identity: dict, beyond: dict, plain: str) -> None:
    provenance = {
        "input_identity": json.dumps(identity),  # as the job hands it over (FITS needs text)
        "beyond_grid": json.dumps(beyond),
        "git_commit": plain,
    }
    path = tmp_path / "provenance.json"
    write_provenance_json(path, provenance, instance_id="i-1", params={}, products=[])
    doc = json.loads(path.read_text())
    assert doc["input_identity"] == identity
    assert doc["beyond_grid"] == beyond
    assert _no_json_in_strings(doc)
    if plain[:1] not in ("{", "["):
        assert doc["git_commit"] == plain
