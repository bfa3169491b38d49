"""How a worker ends: a bounded graceful stop, and exits that must not vouch for its state.

With the broker down, Faust's graceful stop waits on the consumer and producer forever
(SIGTERM was seen ignored for minutes), so a supervisor's stop would end in SIGKILL
anyway. `ShutdownDeadline` hard-exits after a bound instead, without the clean-shutdown
marker, so the next start restores the tables from their changelogs.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

EXIT_STALL = 75  # EX_TEMPFAIL: the watchdog found a stall; restarting heals it
EXIT_SHUTDOWN_TIMEOUT = 70  # EX_SOFTWARE: the graceful stop did not finish in time
EXIT_UNACKNOWLEDGED = 74  # EX_IOERR: a write was not acknowledged; a restart replays it


@dataclass
class ShutdownDeadline:
    """Armed on the first stop request; hard-exits if the stop outlasts `seconds`."""

    seconds: float = 12.0
    exit_code: int = EXIT_SHUTDOWN_TIMEOUT
    failure: int | None = None  # set when this run must end non-zero, whatever the stop
    _timer: threading.Timer | None = field(default=None, repr=False)

    def arm(self) -> None:
        if self._timer is None:
            # A thread, not the event loop: the loop is what may be stuck.
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def fail(self, exit_code: int) -> None:
        """This run ends with `exit_code` and without the clean-shutdown marker."""
        self.failure = exit_code

    def _expire(self) -> None:
        # os.write, not logging: a handler lock held by the stuck thread would hang us.
        os.write(2, b'level=critical msg="graceful shutdown timed out: exiting"\n')
        os._exit(self.failure or self.exit_code)


DEADLINE = ShutdownDeadline()
