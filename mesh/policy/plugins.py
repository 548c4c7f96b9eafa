"""Evaluator plugins: the base class, the built-ins and a registry open to third parties.

Third-party plugins are discovered through the ``airlock.plugins`` entry-point group
so a deployment can add evaluators by installing a package, without forking.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import inspect
import logging
import threading
from typing import Any, TypeVar

from jsonschema import Draft202012Validator

from mesh.policy.builtin_plugins import (
    BUILTIN_PLUGINS,
    Always,
    BulkOperation,
    CommandMatch,
    PathMatch,
    ToolMatch,
    call_paths,
    exec_command,
    path_operation,
)
from mesh.policy.plugin_base import FIELDS_SCHEMA, Plugin, PluginConfigError, config_schema

__all__ = [
    "ENTRY_POINT_GROUP",
    "Always",
    "BulkOperation",
    "CommandMatch",
    "PathMatch",
    "Plugin",
    "PluginConfigError",
    "ToolMatch",
    "available_plugins",
    "call_paths",
    "config_schema",
    "config_validator",
    "exec_command",
    "get_plugin",
    "path_operation",
    "register",
]

ENTRY_POINT_GROUP = "airlock.plugins"

log = logging.getLogger(__name__)

_P = TypeVar("_P", bound=type[Plugin])

_REGISTRY: dict[str, type[Plugin]] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def _check_plugin_class(cls: object) -> type[Plugin]:
    """Reject objects that would fail later, at policy creation or on the hot path."""
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        raise TypeError(f"{cls!r} is not a Plugin subclass")
    if inspect.isabstract(cls):
        raise TypeError(f"{cls.__name__} does not implement matches()")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} has no plugin name")
    if not isinstance(getattr(cls, "description", None), str):
        raise TypeError(f"plugin {name!r} has no description")
    schema = getattr(cls, "config_schema", None)
    if not isinstance(schema, dict):
        raise TypeError(f"plugin {name!r} has no config_schema")
    Draft202012Validator.check_schema(schema)
    return cls


def register(cls: _P) -> _P:
    """Class decorator adding a plugin to the registry under ``cls.name``.

    Registering the same class twice is harmless; a different class under a taken
    name is an error, because silently replacing an evaluator changes what policies do.
    """
    _check_plugin_class(cls)
    with _lock:
        existing = _REGISTRY.get(cls.name)
        if existing is not None and existing is not cls:
            raise ValueError(f"plugin name {cls.name!r} is already registered by {existing.__qualname__}")
        _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    """Register plugins advertised by installed packages; a broken one is logged and skipped.

    A faulty third-party package must not take the gateway down, and must not be able
    to shadow a plugin that is already registered (built-ins included).
    """
    try:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:
        log.warning("could not list %s entry points", ENTRY_POINT_GROUP, exc_info=True)
        return
    for ep in entry_points:
        try:
            cls = _check_plugin_class(ep.load())
        except Exception as exc:
            log.warning("skipping plugin entry point %r (%s): %s", ep.name, ep.value, exc)
            continue
        existing = _REGISTRY.get(cls.name)
        if existing is not None and existing is not cls:
            log.warning(
                "skipping plugin entry point %r: name %r is already taken by %s",
                ep.name,
                cls.name,
                existing.__qualname__,
            )
            continue
        _REGISTRY[cls.name] = cls


def available_plugins(*, reload: bool = False) -> dict[str, type[Plugin]]:
    """All registered plugins by name; installed entry points are loaded on the first call.

    ``reload=True`` scans entry points again (after installing a package at runtime).
    """
    global _entry_points_loaded
    if reload or not _entry_points_loaded:
        with _lock:
            if reload or not _entry_points_loaded:
                _load_entry_points()
                _entry_points_loaded = True
    return dict(_REGISTRY)


def get_plugin(name: str) -> type[Plugin]:
    """The plugin class registered as ``name``; ``KeyError`` if there is none."""
    cls = _REGISTRY.get(name)
    if cls is None:
        cls = available_plugins()[name]
    return cls


@functools.cache
def config_validator(cls: type[Plugin]) -> Draft202012Validator:
    """Validator for a plugin's config, with the shared optional ``fields`` array added.

    Third-party schemas need not declare ``fields`` themselves; every policy may carry them.
    """
    schema: dict[str, Any] = copy.deepcopy(cls.config_schema)
    properties = schema.setdefault("properties", {})
    if isinstance(properties, dict):
        properties.setdefault("fields", FIELDS_SCHEMA)
    return Draft202012Validator(schema)


for _builtin in BUILTIN_PLUGINS:
    register(_builtin)
