"""poll-sleep: the busy-poll loop, sleeping between passes that find nothing.

The sleep saves the CPU that busy-poll burns, at a price: data that arrives
just after a pass waits up to one ``interval`` before the next pass sees it.
"""

from __future__ import annotations

import time
from typing import ClassVar

from iobench.servers.base import Param, parse_duration
from iobench.servers.busy_poll import BusyPollServer


class PollSleepServer(BusyPollServer):
    name: ClassVar[str] = "poll-sleep"
    mechanism: ClassVar[str] = "one thread, sleeping between polls"
    description: ClassVar[str] = (
        "The busy-poll loop, but a pass that finds nothing sleeps `interval` before the next"
    )
    spins: ClassVar[bool] = False
    params: ClassVar[tuple[Param, ...]] = (
        Param("interval", 0.001, "sleep after an idle pass, seconds (10ms, 100us also work)",
              parse=parse_duration, minimum=0.0, unit="s",
              # time.sleep() resumes after a signal handler returns: a stop
              # waits out the interval, so it stays well under a second.
              maximum=1.0),
    )

    def idle(self) -> None:
        time.sleep(self.options["interval"])
