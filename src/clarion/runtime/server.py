"""uvicorn's server, stopping the way a sidecar should (docs/operations.md, "Stopping")."""

from __future__ import annotations

import logging
import threading
from types import FrameType

import uvicorn

from clarion.runtime.service import Runtime

log = logging.getLogger("clarion.serve")


class DrainingServer(uvicorn.Server):
    """On SIGTERM or SIGINT, uvicorn would stop listening at once. Instead: keep answering (503
    `shutting_down` to new events, `/readyz` not ready) while sends in flight finish or are
    given back, then stop serving. A second signal stops serving at once."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, timeout: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.timeout = timeout
        self.drained = threading.Event()
        self.clean = True
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            self.should_exit = True
            self.force_exit = True
            return
        self._draining = True
        log.info(
            "stopping: refusing new events, finishing sends in flight",
            extra={"timeout": self.timeout},
        )
        threading.Thread(target=self._drain, name="clarion-drain", daemon=True).start()

    def _drain(self) -> None:
        self.clean = self.runtime.drain(self.timeout)
        self.drained.set()
        self.should_exit = True
