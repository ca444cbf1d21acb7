"""Each attempt's log, shipped to the products bucket so it outlives the instance.

On AWS a reclaimed or failed instance takes its disk with it. The worker therefore writes
everything logged during an attempt (and a command job's program output) to a local file and
uploads the whole file to ``runs/<run>/obs/<obs>/logs/attempt-<n>.log``
(:meth:`contract.layout.ObsLayout.log`) when the attempt starts, at every chunk boundary (or
workdir sync of a command job) and when it ends, after its checkpoint is durable: on a notice
the checkpoint comes first, the log second. A SIGKILLed attempt keeps what was shipped
before the kill. ``spotcube logs`` reads these objects.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from payload.store import ObjectStore

log = logging.getLogger(__name__)

# A log is re-uploaded whole; past this size only its tail is shipped, so a chatty program
# cannot turn each chunk boundary into a large upload.
MAX_SHIPPED_BYTES = 4 * 1024 * 1024
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogShipper:
    """Captures the process's log records to ``path`` and uploads the file to ``key``.

    Parameters
    ----------
    store : ObjectStore
        The products bucket.
    key : str
        Where the log goes (``ObsLayout.log(n)``).
    path : Path
        The local file; a command job's program appends its output to it too.
    """

    def __init__(self, store: ObjectStore, key: str, path: Path) -> None:
        self.store = store
        self.key = key
        self.path = path
        self.shipped_bytes = 0
        self.ships = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._handler.setLevel(logging.INFO)

    def start(self) -> LogShipper:
        logging.getLogger().addHandler(self._handler)
        return self

    def ship(self) -> bool:
        """Upload the log as it is now; a failure is logged, never raised (logs are best effort)."""
        self._handler.flush()
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            log.warning("cannot read the attempt log %s: %s", self.path, exc)
            return False
        if len(data) > MAX_SHIPPED_BYTES:
            cut = len(data) - MAX_SHIPPED_BYTES
            data = f"[first {cut} bytes not shipped]\n".encode() + data[cut:]
        if len(data) == self.shipped_bytes:
            return True  # nothing new since the last upload
        started = time.monotonic()
        try:
            self.store.put_bytes(self.key, data, content_type="text/plain; charset=utf-8")
        except Exception as exc:
            log.warning("shipping the attempt log to %s failed: %s", self.key, exc)
            return False
        self.shipped_bytes = len(data)
        self.ships += 1
        log.debug("log shipped to %s in %.2f s", self.key, time.monotonic() - started)
        return True

    def close(self) -> None:
        """Ship a last time and stop capturing.

        The handler comes off the root logger even when the last upload is interrupted (an
        instance dying mid-request, Ctrl-C): left there, it would copy every later job's log
        into this attempt's file, and once the attempt's directory is cleaned up Python's
        ``FileHandler`` re-opening it raises into whatever code logs next.
        """
        try:
            self.ship()
        finally:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
