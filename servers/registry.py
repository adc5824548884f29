"""Every server model, by name. The one place that says which models exist."""

from __future__ import annotations

import importlib

from servers.base import ServerModel

# Module and class of each model, in the order tables list them.
_MODELS: tuple[tuple[str, str], ...] = (
    ("servers.busy_poll", "BusyPollServer"),
    ("servers.poll_sleep", "PollSleepServer"),
    ("servers.select_server", "SelectServer"),
    ("servers.threads", "ThreadPerConnectionServer"),
    ("servers.poll_server", "PollServer"),
    ("servers.epoll_server", "EpollServer"),
    ("servers.asyncio_server", "AsyncioServer"),
    ("servers.uvloop_server", "UvloopServer"),
    ("servers.threadpool", "ThreadPoolServer"),
    ("servers.fork_server", "ForkServer"),
    ("servers.prefork", "PreforkServer"),
    ("servers.sigio", "SigioServer"),
    ("servers.io_uring", "IoUringServer"),
)


class UnknownModelError(LookupError):
    """No model has that name."""


def all_models() -> dict[str, type[ServerModel]]:
    """Every registered model, available here or not, by name."""
    models = {}
    for module_name, class_name in _MODELS:
        cls = getattr(importlib.import_module(module_name), class_name)
        models[cls.name] = cls
    return models


def available_models() -> dict[str, type[ServerModel]]:
    """The models that can run on this machine."""
    return {name: cls for name, cls in all_models().items() if cls.unavailable_reason() is None}


def get_model(name: str) -> type[ServerModel]:
    models = all_models()
    try:
        return models[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models: {', '.join(models)}"
        ) from None
