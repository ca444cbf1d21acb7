"""powerspec.png: the spherical panel's y-axis fits the data, long titles wrap.

Issue 23: with the 16 MWA dipole delays in the beam name the title ran off the figure, and
the y-axis spanned 1e-4 to 1e12 for power near 1e8 (lower error bars reaching towards zero).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from payload.plots import TITLE_WIDTH, Y_MARGIN, spherical_ylim, wrapped_title

power = arrays(
    np.float64,
    st.integers(1, 12),
    elements=st.one_of(
        st.floats(-1e12, 1e12, allow_nan=False),
        st.just(np.nan),
        st.just(0.0),
    ),
)


@given(values=power, window=power, sigma_scale=st.floats(0.0, 10.0))
def test_ylim_shows_every_value_and_nothing_far_below(
    values: np.ndarray, window: np.ndarray, sigma_scale: float
) -> None:
    upper = np.abs(values) * (1 + sigma_scale)
    limits = spherical_ylim(values, window, upper=(upper,))
    shown = np.abs(np.concatenate([values, window]))
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if shown.size == 0:
        assert limits is None
        return
    assert limits is not None
    low, high = limits
    assert low <= shown.min()
    assert high >= shown.max()
    finite_upper = upper[np.isfinite(upper)]
    assert high >= finite_upper.max(initial=0.0)
    # the axis starts within the margin of the smallest value, not decades below it
    assert low >= shown.min() / Y_MARGIN * (1 - 1e-12)


def test_the_mwa_beam_title_wraps_to_the_panel() -> None:
    delays = ",".join(str(d) for d in [0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6])
    text = f"Spherical power, 1$\\sigma$ thermal noise; beam mwa_analytic(delays=[{delays}])"
    lines = wrapped_title(text).splitlines()
    assert len(lines) >= 2
    assert all(len(line) <= TITLE_WIDTH or " " not in line for line in lines)
    assert " ".join(lines) == " ".join(text.split())  # nothing lost
