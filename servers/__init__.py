"""Interchangeable uppercase-echo servers, one module per I/O model."""

from servers.base import Family, Param, ParamError, ServerModel, transform
from servers.registry import UnknownModelError, all_models, available_models, get_model

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
