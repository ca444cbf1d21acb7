"""Draw restored images side by side, each with its dynamic range, for the example's README.

    python plot_images.py OUT.png "TITLE=IMAGE.fits" ["TITLE=IMAGE.fits" ...]

Each panel shows the central 12 x 12 degrees around the phase centre (Fornax A) on a
symmetric colour scale of +/- 10 times the image's off-source rms, so stripes left by a bad
calibration show at the same contrast in every panel.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits

HALF_WIDTH_DEG = 6.0
OFF_SOURCE_DEG = 3.0  # as the example's test measures it


def main(out: str, panels: list[str]) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        title, _, path = panel.partition("=")
        with fits.open(path) as hdus:
            image = np.asarray(hdus[0].data, dtype=float).squeeze()
            pixel_deg = abs(float(hdus[0].header["CDELT1"]))
        centre = np.array(image.shape) // 2
        rows, cols = np.indices(image.shape)
        radius = np.hypot(rows - centre[0], cols - centre[1]) * pixel_deg
        rms = float(np.sqrt(np.mean(image[radius > OFF_SOURCE_DEG] ** 2)))
        half = int(HALF_WIDTH_DEG / pixel_deg)
        cut = image[centre[0] - half : centre[0] + half, centre[1] - half : centre[1] + half]
        extent = (HALF_WIDTH_DEG, -HALF_WIDTH_DEG, -HALF_WIDTH_DEG, HALF_WIDTH_DEG)
        ax.imshow(cut, origin="lower", cmap="inferno", vmin=-10 * rms, vmax=10 * rms,
                  extent=extent)  # fmt: skip
        ax.set_title(f"{title}\npeak/rms = {image.max() / rms:.0f}", fontsize=10)
        ax.set_xlabel("RA offset (deg)")
        ax.set_ylabel("Dec offset (deg)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: plot_images.py OUT.png TITLE=IMAGE.fits [TITLE=IMAGE.fits ...]")
    main(sys.argv[1], sys.argv[2:])
