"""The MWA-style two stages through real worker processes: image jobs, then an integrate job
that sums their uv cubes from the products bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.layout import ObsLayout
from payload.records import JobMessage
from payload.synth import preset_params, write_preset
from payload.uvcube import UVCube
from tests.work.conftest import PRODUCTS, RUN, Plane

pytestmark = pytest.mark.slow


def send(plane: Plane, message: JobMessage) -> None:
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())


def test_image_then_integrate_through_the_worker(plane: Plane, tmp_path: Path) -> None:
    observations = ["night-1", "night-2"]
    for seed, obs_id in enumerate(observations):
        path = tmp_path / f"{obs_id}.uvh5"
        write_preset(path, "tiny", seed=seed)
        uri = plane.put_input(path.name, path.read_bytes())  # the suffix tells pyuvdata the format
        send(
            plane,
            JobMessage.create(
                run_id=RUN, obs_id=obs_id, input=uri, kind="image", params=preset_params("tiny")
            ),
        )
    imaging = plane.start_worker("--max-jobs", "2", "--preload", "image", name="image")
    assert imaging.wait(timeout=180) == 0, plane.log_of("image")
    for obs_id in observations:
        assert plane.get(ObsLayout(RUN, obs_id).done) is not None, plane.log_of("image")

    cube_keys = [ObsLayout(RUN, obs).product("uvcube.h5") for obs in observations]
    plane.submit(
        "field-sum",
        {"uvcubes": [f"s3://{PRODUCTS}/{key}" for key in cube_keys], "cubes_per_chunk": 1},
        kind="integrate",
    )
    integrating = plane.start_worker("--max-jobs", "1", "--preload", "integrate", name="sum")
    assert integrating.wait(timeout=180) == 0, plane.log_of("sum")

    layout = ObsLayout(RUN, "field-sum")
    assert plane.get(layout.done) is not None
    cubes = []
    # The cubes as their DONE lists them (the URIs name products/<name>; the worker resolves
    # them through DONE the same way).
    for name, cube_layout in [
        *((obs, ObsLayout(RUN, obs)) for obs in observations),
        ("sum", layout),
    ]:
        local = tmp_path / f"{name}.h5"
        local.write_bytes(plane.product(cube_layout, "uvcube.h5") or b"")
        cubes.append(UVCube.read(local))
    *parts, total = cubes
    np.testing.assert_allclose(total.vis, sum(c.vis for c in parts), rtol=1e-12)
    np.testing.assert_allclose(total.weights, sum(c.weights for c in parts), rtol=1e-12)
    assert plane.product(layout, "powerspec.h5") is not None
