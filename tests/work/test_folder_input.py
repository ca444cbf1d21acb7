"""A Measurement Set folder stored by content is restored by a real worker and imaged.

The worker (``python -m payload worker``) fetches the archive that ``spotcube submit`` would
store, restores the folder through :mod:`payload.inputs` and images it; the image must equal
the one made in-process from the original folder (pyuvdata reads both through casacore).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from contract.layout import ObsLayout
from payload import inputs
from payload.jobs.image import ImageJob
from payload.records import JobMessage
from tests.payload.conftest import make_context, run_job
from tests.work.conftest import RAW, RUN, Plane

PARAMS = {"chunk_channels": 4, "image_size": 64}


@pytest.fixture
def tiny_ms(tmp_path: Path) -> Path:
    pytest.importorskip("casacore.tables", reason="python-casacore writes the MS")
    from pyuvdata import UVData

    from payload.synth import write_preset

    write_preset(tmp_path / "tiny.uvh5", "tiny", noise_jy=0.05, seed=3)
    path = tmp_path / "src" / "obs-ms.ms"
    path.parent.mkdir()
    UVData.from_file(str(tmp_path / "tiny.uvh5")).write_ms(str(path))
    return path


@pytest.mark.slow
def test_worker_restores_and_images_a_measurement_set_folder(plane: Plane, tiny_ms: Path) -> None:
    buffer = io.BytesIO()
    inputs.pack_directory(tiny_ms, buffer)
    key = inputs.content_key("", hashlib.sha256(buffer.getvalue()).hexdigest())
    plane.s3.put_object(
        Bucket=RAW,
        Key=key,
        Body=buffer.getvalue(),
        Metadata=inputs.metadata_for(tiny_ms.name, inputs.FORM_TAR),
    )
    message = JobMessage.create(
        run_id=RUN, obs_id="obs-ms", input=f"s3://{RAW}/{key}", kind="image", params=PARAMS
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker("--max-jobs", "1")
    assert worker.wait(timeout=240) == 0, plane.log_of()
    layout = ObsLayout(RUN, "obs-ms")
    done = json.loads(plane.get(layout.done) or b"{}")
    assert "image_cube.fits" in done["products"], done

    reference = ImageJob(make_context(tiny_ms, PARAMS, plane.tmp / "ref-work"))
    products = {p.name: p for p in run_job(reference, plane.tmp / "ref-chunks", plane.tmp / "ref")}
    ours = plane.product(layout, "image_cube.fits")
    assert ours is not None
    with fits.open(io.BytesIO(ours)) as got, fits.open(products["image_cube.fits"]) as ref:
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
