"""spotcube payload: the job that runs on every spot instance.

Imaging and power spectra of interferometric observations (``payload.jobs``), chunked so that
an interrupted job resumes where it stopped, and the spot-resilient worker that drives it.
"""

__version__ = "0.1.0"
