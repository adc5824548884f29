"""sigio: signal-driven I/O, Stevens' fourth model.

Every socket is non-blocking and has O_ASYNC set, with this process as its
owner (F_SETOWN): the kernel sends SIGIO whenever one of them becomes
readable or writable, or has a new connection. SIGIO does not say which
socket, so the loop is the busy-poll loop, except that a pass that finds
nothing waits for the next SIGIO instead of trying again.

SIGIO stays blocked and is taken with sigwaitinfo(), never by a handler: a
SIGIO that arrives while a pass runs stays pending, and the next wait returns
at once, so no wake-up is lost between a pass and the wait.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from typing import Any, ClassVar

from iobench.servers.base import Family
from iobench.servers.busy_poll import BusyPollServer

ARMED = 1  # Connection.interest: O_ASYNC is set on the socket


def arm(sock: socket.socket) -> None:
    """Have the kernel signal this process when ``sock`` is ready."""
    fcntl.fcntl(sock, fcntl.F_SETOWN, os.getpid())
    flags = fcntl.fcntl(sock, fcntl.F_GETFL)
    fcntl.fcntl(sock, fcntl.F_SETFL, flags | os.O_ASYNC | os.O_NONBLOCK)


def disarm(sock: socket.socket) -> None:
    flags = fcntl.fcntl(sock, fcntl.F_GETFL)
    fcntl.fcntl(sock, fcntl.F_SETFL, flags & ~os.O_ASYNC)


class SigioServer(BusyPollServer):
    name: ClassVar[str] = "sigio"
    family: ClassVar[Family] = Family.SIGNAL_DRIVEN
    mechanism: ClassVar[str] = "one thread, woken by SIGIO"
    description: ClassVar[str] = (
        "O_ASYNC sockets: the kernel raises SIGIO when any is ready; the loop then tries "
        "every socket, and waits in sigwaitinfo() after a pass that finds nothing"
    )
    spins: ClassVar[bool] = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not (hasattr(signal, "SIGIO") and hasattr(fcntl, "F_SETOWN")
                and hasattr(signal, "sigwaitinfo")):
            return "needs SIGIO, F_SETOWN and sigwaitinfo() (Linux)"
        return None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # True while SIGIO is blocked, so shutdown() may raise one: unblocked,
        # SIGIO's default action would kill the process.
        self._waiting_for_sigio = False

    def serve(self) -> None:
        # Should a SIGIO ever be delivered rather than waited for, ignore it
        # instead of dying of its default action.
        previous_handler = signal.signal(signal.SIGIO, lambda signum, frame: None)
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
        self._waiting_for_sigio = True
        try:
            arm(self.listener)
            super().serve()
        finally:
            self._waiting_for_sigio = False
            disarm(self.listener)  # the harness closes it after we return
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            signal.signal(signal.SIGIO, previous_handler)

    def idle(self) -> None:
        unarmed = [conn for conn in self.connections if not conn.interest & ARMED]
        if unarmed:
            # Data that came before O_ASYNC was set raised no SIGIO: arm the
            # new sockets and make one more pass instead of waiting.
            for conn in unarmed:
                arm(conn.sock)
                conn.interest |= ARMED
            return
        signal.sigwaitinfo({signal.SIGIO})

    def shutdown(self) -> None:
        super().shutdown()
        self.wake()

    def wake(self) -> None:
        """Stop or an offloaded answer: the loop may be waiting in sigwaitinfo().

        A SIGIO of our own wakes it. The offload pool's threads start inside
        serve(), so they inherit the blocked SIGIO, and the signal waits for
        the loop's sigwaitinfo() whichever thread raises it.
        """
        if self._waiting_for_sigio:
            os.kill(os.getpid(), signal.SIGIO)
