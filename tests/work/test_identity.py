"""A product's identity is (input bytes, params, payload code): each part, checked.

Code: any edit of any payload source file gives a new code identity (and so a new
params_hash), while ``__version__`` stays what it was. Params: a message whose hash does not
follow from its params under this code is refused. Input: ``python -m payload image`` refuses
an input replaced after its first chunk was read (each chunk re-opens the file by path).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payload
from payload.codeid import CONTRACT_ROOT, PACKAGE_ROOT, code_identity
from payload.errors import InvalidInputError
from payload.records import CODE_ID, JobMessage, check_params_hash, params_hash

SOURCES = sorted(
    p.relative_to(PACKAGE_ROOT).as_posix()
    for p in PACKAGE_ROOT.rglob("*.py")
    if "__pycache__" not in p.parts
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("code") / "payload"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_running_code_identity_is_the_package_digest() -> None:
    assert code_identity() == CODE_ID
    assert len(CODE_ID) == 64


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    source=st.sampled_from(SOURCES),
    where=st.floats(min_value=0.0, max_value=1.0),
    edit=st.sampled_from(["insert", "delete", "flip"]),
)
def test_any_edit_of_any_payload_source_changes_the_code_identity(
    tree: Path, source: str, where: float, edit: str
) -> None:
    before = code_identity(tree)
    path = tree / source
    original = path.read_bytes()
    at = min(int(where * len(original)), max(len(original) - 1, 0))
    if edit == "insert" or not original:
        changed = original[:at] + b"#" + original[at:]
    elif edit == "delete":
        changed = original[:at] + original[at + 1 :]
    else:
        changed = original[:at] + bytes([original[at] ^ 0x01]) + original[at + 1 :]
    try:
        path.write_bytes(changed)
        after = code_identity(tree)
    finally:
        path.write_bytes(original)
    assert after != before, f"{source}: edited, same identity"
    assert code_identity(tree) == before  # the digest is of the bytes, nothing else
    # The release string is not what tells the codes apart.
    assert params_hash("image", {}, code_id=after) != params_hash("image", {}, code_id=before)
    assert payload.__version__ == "0.1.0"


def test_an_edit_of_the_contract_changes_the_code_identity(tmp_path: Path) -> None:
    """The worker reads its layout and settings from the contract package: it is code too."""
    assert code_identity() == code_identity(PACKAGE_ROOT, CONTRACT_ROOT)
    copy = tmp_path / "contract"
    shutil.copytree(CONTRACT_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_identity(PACKAGE_ROOT, copy)
    init = copy / "__init__.py"
    init.write_bytes(init.read_bytes() + b"#")
    assert code_identity(PACKAGE_ROOT, copy) != before


def test_a_new_source_file_changes_the_code_identity(tree: Path) -> None:
    before = code_identity(tree)
    extra = tree / "jobs" / "new_kind.py"
    extra.write_text("X = 1\n")
    try:
        assert code_identity(tree) != before
    finally:
        extra.unlink()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_params = st.dictionaries(st.text(min_size=1, max_size=8), _json, max_size=4)


def _message(params: dict[str, Any], claimed: str) -> JobMessage:
    return JobMessage(
        run_id="r",
        obs_id="o",
        input="s3://b/k",
        kind="image",
        params=params,
        params_hash=claimed,
        submitted_at="t",
    )


@settings(max_examples=200, deadline=None)
@given(p=_params, q=_params)
def test_a_params_hash_is_accepted_only_for_the_params_it_was_made_from(
    p: dict[str, Any], q: dict[str, Any]
) -> None:
    assert check_params_hash(_message(p, params_hash("image", p))) == params_hash("image", p)
    if p != q:
        with pytest.raises(InvalidInputError, match="does not follow from its params"):
            check_params_hash(_message(q, params_hash("image", p)))
    # Made by other code: refused too, whatever the version string says.
    with pytest.raises(InvalidInputError, match="does not follow"):
        check_params_hash(_message(p, params_hash("image", p, code_id="0" * 64)))


def test_local_image_refuses_an_input_replaced_after_the_first_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's reproduction: replace A.uvh5 by another valid observation mid-run.

    It used to exit 0 with a cube of A's and B's channels and provenance naming A.
    """
    from payload.cli import main
    from payload.jobs.image import ImageJob
    from payload.synth import write_preset

    a, b = tmp_path / "A.uvh5", tmp_path / "B.uvh5"
    write_preset(a, "tiny", seed=1)
    write_preset(b, "tiny", seed=2)
    real = ImageJob.run_chunk
    calls: list[str] = []

    def run_chunk(self: ImageJob, chunk_id: str, out_path: Path) -> None:
        real(self, chunk_id, out_path)
        calls.append(chunk_id)
        if len(calls) == 1:
            b.replace(a)  # the path now names B's bytes

    monkeypatch.setattr(ImageJob, "run_chunk", run_chunk)
    out = tmp_path / "out"
    status = main(["image", str(a), "--out", str(out), "--chunk-channels", "4", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 65, err
    assert len(calls) > 1
    assert len(err.splitlines()) == 1
    assert "changed while it was read" in err
    assert not (out / "provenance.json").exists()
    assert not list(out.glob("*.fits"))


def test_attempt_products_are_not_products_to_a_key_parser() -> None:
    """What a listing finds under attempts/ is never taken for the job's product."""
    from contract.layout import KeyKind, ObsLayout, parse_key

    layout = ObsLayout("r", "o")
    key = layout.attempt_product("3-0123abcd", "image_cube.fits")
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.kind is KeyKind.ATTEMPT_PRODUCT
    assert parsed.name == "image_cube.fits"
    with pytest.raises(ValueError, match="key-safe"):
        layout.attempt_product("../x", "a")
