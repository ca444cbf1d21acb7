"""A group's pipeline is part of its image variant: the job file `spotcube submit --job` sends
to AWS names only files that the variant's `pipelines` key puts on the image.

Structural checks of the variant files, the pipelines role and the {job_dir} expansion (a
bake is too slow for the test suite here; tests/image bakes and boots the variants).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest
import yaml

from spotcube.bake.contenthash import content_hash
from spotcube.bake.variant import PIPELINES_ROLE, ImageVariant, VariantError
from spotcube.jobdef import IMAGE_PIPELINES_ROOT, JobDefinition

REPO = Path(__file__).resolve().parents[2]
VARIANTS = sorted((REPO / "images").glob("*.yaml"))
ROLE = REPO / "ansible" / "roles" / PIPELINES_ROLE


def _shipped_jobs() -> list[tuple[Path, Path]]:
    """(variant file, job file) for every job file of every pipeline of every variant."""
    return [
        (variant_file, job)
        for variant_file in VARIANTS
        for folder in ImageVariant.load(variant_file).pipelines
        for job in sorted(folder.glob("*.json"))
    ]


def test_the_role_puts_pipelines_where_submit_points_job_dir() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert PurePosixPath(defaults["pipelines_root"]) == IMAGE_PIPELINES_ROOT


def test_the_example_variant_ships_the_example_pipeline() -> None:
    variant = ImageVariant.load(REPO / "images" / "radio-tools.yaml")
    assert variant.pipelines == (REPO / "examples" / "mwa-pipeline",)
    assert variant.playbook_roles()[-1] == PIPELINES_ROLE
    assert variant.extra_vars()["pipelines_sources"] == [str(REPO / "examples" / "mwa-pipeline")]


@pytest.mark.parametrize(
    ("variant_file", "job_file"),
    _shipped_jobs(),
    ids=lambda p: p.relative_to(REPO).as_posix(),
)
def test_every_file_a_shipped_job_names_under_job_dir_ships(
    variant_file: Path, job_file: Path
) -> None:
    """Expanded for AWS, each path under the job's folder on the image is a file of the
    folder the variant copies there."""
    job = JobDefinition.load(job_file).on_image()
    on_image = IMAGE_PIPELINES_ROOT / job_file.parent.name
    words = [w for w in _strings(job.params_for("s3://raw/obs.tar")) if str(on_image) in w]
    assert words, f"{job_file} never names {{job_dir}}: nothing of the folder is used"
    for word in words:
        path = PurePosixPath(word[word.index(str(on_image)) :].split()[0])
        assert (job_file.parent / path.relative_to(on_image)).is_file(), word


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _variant_with_pipeline(tmp_path: Path) -> Path:
    pipeline = tmp_path / "pipe"
    shutil.copytree(REPO / "examples" / "mwa-pipeline", pipeline)
    variant_file = tmp_path / "v.yaml"
    variant_file.write_text("name: pipe-test\npipelines: [pipe]\n")
    return variant_file


def test_editing_a_pipeline_rebakes_its_variant_only(tmp_path: Path) -> None:
    variant_file = _variant_with_pipeline(tmp_path)
    before = content_hash(REPO, ImageVariant.load(variant_file)).hexdigest
    default_before = content_hash(REPO).hexdigest
    skymodel = tmp_path / "pipe" / "fornax-a.skymodel"
    skymodel.write_text(skymodel.read_text() + "# edited\n")
    assert content_hash(REPO, ImageVariant.load(variant_file)).hexdigest != before
    assert content_hash(REPO).hexdigest == default_before


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("missing", "pipelines: missing is not a folder"),
        ("empty", "pipelines: empty holds no job file"),
    ],
)
def test_a_bad_pipeline_entry_is_one_line_naming_the_file_and_key(
    tmp_path: Path, entry: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    variant_file = tmp_path / "v.yaml"
    variant_file.write_text(f"name: bad-pipe\npipelines: [{entry}]\n")
    with pytest.raises(VariantError, match=f"^{variant_file}: {message}") as info:
        ImageVariant.load(variant_file)
    assert "\n" not in str(info.value)


def test_two_pipelines_of_one_name_are_refused(tmp_path: Path) -> None:
    for parent in ("a", "b"):
        (tmp_path / parent / "pipe").mkdir(parents=True)
        (tmp_path / parent / "pipe" / "job.json").write_text("{}")
    variant_file = tmp_path / "v.yaml"
    variant_file.write_text("name: twice\npipelines: [a/pipe, b/pipe]\n")
    with pytest.raises(VariantError, match="two folders named alike"):
        ImageVariant.load(variant_file)
