"""article: the article's non-blocking server, as printed. A reference, not a conforming model.

busy-poll is the article's idea done correctly. This is the article's own
code, re-typed and nothing more, so that what it really does can be measured:

- the listener is set non-blocking, so ``accept()`` raises BlockingIOError
  while nobody connects, and with no client the loop spins;
- the sockets ``accept()`` returns are left as they come, and on Linux they
  are *blocking* (``getblocking()`` is True: the new socket does not inherit
  the listener's O_NONBLOCK, and Python sets no timeout on it). So
  ``recv(1024)`` on a client that has nothing to say sleeps in the kernel,
  every other client waits behind it, and the article's ``except
  BlockingIOError: continue`` never fires for a client;
- ``send()``'s count is not checked; on these blocking sockets it does not
  return early either, so a client that does not read its replies leaves the
  loop asleep in ``send()`` until it does;
- EOF closes the client; any other error ends the server, since the article
  catches BlockingIOError alone: a client that leaves with a request
  unanswered (a reset, or EPIPE on the reply) stops it, with one line on
  stderr saying so and exit code 1.

What the project changes, and only to run it in the harness: the reply is the
protocol's (``transform``: the article echoes, the protocol uppercases), the
harness binds the listener, nothing is printed (stdout carries the ready
line), and the loop checks a stop flag where the article has ``while True``
and before each ``recv()``. Those checks alone cannot stop a loop asleep in
``recv()`` or ``send()``: a signal interrupts the call, but Python retries it
after the handler (PEP 475). So :meth:`ArticleServer.shutdown`, which the
harness calls from its SIGTERM handler, also shuts every socket down: the
retried ``recv()`` then returns EOF, a retried ``send()`` fails with EPIPE,
and an error raised once the stop has begun ends the loop instead of the
server. While it serves, the loop does exactly what the article's does.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

from iobench.servers.base import Family, ParamError, ServerModel, transform


class ArticleServer(ServerModel):
    name: ClassVar[str] = "article"
    family: ClassVar[Family] = Family.NONBLOCKING
    mechanism: ClassVar[str] = "one thread; a non-blocking listener, blocking clients"
    description: ClassVar[str] = (
        "The article's server as printed: non-blocking accept(), then recv(1024) and send() "
        "on each client's socket as accept() returned it (blocking)"
    )
    reference: ClassVar[str | None] = (
        "as printed, not conforming: one silent client stalls the rest; no backpressure"
    )
    # The article's own read size.
    recv_size: ClassVar[int] = 1024

    def __init__(self, listener: socket.socket, **params: Any) -> None:
        super().__init__(listener, **params)
        self.clients: list[socket.socket] = []
        self._running = True

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """As every model's, but no work per request: the loop runs as printed."""
        options = super().resolve_params(given)
        if options["work"] != "none":
            raise ParamError(f"model {cls.name!r} runs the article's loop as printed: "
                             "it takes no work per request (work=none)")
        return options

    @classmethod
    def starved_by(cls, params: dict[str, Any], idle: int) -> str | None:
        if idle:
            return ("the article's loop sleeps in recv() on the first idle connection, "
                    "so the connections after it are never served")
        return None

    def serve(self) -> None:
        server, clients = self.listener, self.clients
        try:
            # The article's loop, line for line; `while True` and the check before
            # recv() are the stop flag's.
            server.setblocking(False)
            while self._running:
                try:
                    client, _ = server.accept()
                    clients.append(client)
                except BlockingIOError:
                    pass
                for client in clients:
                    if not self._running:
                        break
                    try:
                        data = client.recv(self.recv_size)
                        if data:
                            client.send(transform(data))
                        else:
                            clients.remove(client)
                            client.close()
                    except BlockingIOError:
                        continue
        except OSError as exc:
            # The sockets shutdown() shut: the stop's own doing. Before the stop,
            # an error ends the server, as it ends the article's; said in one line
            # (a BrokenPipeError would otherwise pass for a closed stdout).
            if self._running:
                raise SystemExit(f"{self.name}: the loop ended on {type(exc).__name__}: "
                                 f"{exc.strerror or exc} (the article's code catches "
                                 "BlockingIOError alone)") from None
        finally:
            for client in clients:
                client.close()

    def shutdown(self) -> None:
        self._running = False
        for sock in [self.listener, *self.clients]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected (any more)
                pass
