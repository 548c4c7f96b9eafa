"""From a Python call to the tool call's ``arguments`` and back.

The policies judge JSON, so a call's arguments are checked to be JSON as they are (no silent ``str()``,
no ``int`` keys turned into strings, no ``NaN``): what a person approves must be what runs. Anything else is a
``TypeError`` naming the argument, raised before anything is sent. When an approver edits the call, the
edited arguments are bound back onto the function's signature.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

_SELF = ("self", "cls")


def check_json(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` is JSON as it stands (str-keyed objects, lists, finite numbers…)."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}, which JSON cannot carry")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r} ({type(key).__name__}); JSON object keys are strings")
            check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be sent as JSON; "
        "pass str, int, float, bool, None, lists or dicts of them (e.g. str(path) for a path)"
    )


def tool_arguments(signature: inspect.Signature, bound: inspect.BoundArguments) -> dict[str, Any]:
    """The call's arguments by name, defaults included: ``*args`` as a list under its name, ``**kwargs``
    spread beside the named ones, and a method's ``self``/``cls`` left out."""
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if i == 0 and name in _SELF and kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return out


def rebind(
    signature: inspect.Signature, bound: inspect.BoundArguments, edited: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments that call the function with an approver's ``edited`` arguments
    (``self`` kept from the original call). A name the approver removed falls back to its default; one the
    signature cannot take is a ``TypeError``."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    rest = dict(edited)
    names = list(signature.parameters)
    for i, (name, param) in enumerate(signature.parameters.items()):
        if i == 0 and name in _SELF and param.kind is not inspect.Parameter.KEYWORD_ONLY and name in bound.arguments:
            args.append(bound.arguments[name])
        elif param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            if name in rest:
                args.append(rest.pop(name))
            elif param.default is not inspect.Parameter.empty:
                args.append(param.default)
            else:
                raise TypeError(f"the approved arguments leave out {name!r}, which has no default")
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            extra = rest.pop(name, [])
            if not isinstance(extra, list):
                raise TypeError(f"the approved arguments give {name!r} as {type(extra).__name__}, not a list")
            args.extend(extra)
        elif param.kind is inspect.Parameter.KEYWORD_ONLY:
            if name in rest:
                kwargs[name] = rest.pop(name)
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    if rest and not var_keyword:
        raise TypeError(f"the approved arguments name {sorted(rest)}, which the function does not take")
    kwargs.update({k: v for k, v in rest.items() if k not in names})
    signature.bind(*args, **kwargs)  # anything else that does not fit is a TypeError here, before the call
    return args, kwargs
