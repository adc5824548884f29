"""Every server model, by name. The one place that says which models exist."""

from __future__ import annotations

import importlib

from iobench.servers.base import ServerModel

# Module and class of each model, in the order tables list them.
_MODELS: tuple[tuple[str, str], ...] = (
    ("iobench.servers.busy_poll", "BusyPollServer"),
    ("iobench.servers.poll_sleep", "PollSleepServer"),
    ("iobench.servers.select_server", "SelectServer"),
    ("iobench.servers.threads", "ThreadPerConnectionServer"),
    ("iobench.servers.poll_server", "PollServer"),
    ("iobench.servers.epoll_server", "EpollServer"),
    ("iobench.servers.asyncio_server", "AsyncioServer"),
    ("iobench.servers.uvloop_server", "UvloopServer"),
    ("iobench.servers.threadpool", "ThreadPoolServer"),
    ("iobench.servers.fork_server", "ForkServer"),
    ("iobench.servers.prefork", "PreforkServer"),
    ("iobench.servers.sigio", "SigioServer"),
    ("iobench.servers.io_uring", "IoUringServer"),
    # References last: published code run as printed, measured in a scenario of its own.
    ("iobench.servers.article", "ArticleServer"),
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


def available_models(*, references: bool = False) -> dict[str, type[ServerModel]]:
    """The conforming models that can run on this machine; the reference ones too if asked.

    A reference model (``ServerModel.reference``) does not keep the protocol's
    contract, so what runs every model (the suites, a matrix's default) leaves
    it out unless it asks for it by name.
    """
    return {name: cls for name, cls in all_models().items()
            if cls.unavailable_reason() is None and (references or cls.reference is None)}


def reference_models() -> dict[str, type[ServerModel]]:
    """The reference models, available here or not, by name."""
    return {name: cls for name, cls in all_models().items() if cls.reference is not None}


def get_model(name: str) -> type[ServerModel]:
    models = all_models()
    try:
        return models[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models: {', '.join(models)}"
        ) from None
