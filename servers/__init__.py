"""Interchangeable uppercase-echo servers, one module per I/O model."""

from iobench.servers.base import Family, Param, ParamError, ServerModel, transform
from iobench.servers.registry import UnknownModelError, all_models, available_models, get_model

__all__ = [
    "Family",
    "Param",
    "ParamError",
    "ServerModel",
    "UnknownModelError",
    "all_models",
    "available_models",
    "get_model",
    "transform",
]
