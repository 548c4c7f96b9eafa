"""The strict JSON types every REST model is built from, and ``parse``: the one way a route turns a body
or a query string into a model, the first problem a 400 naming its field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictInt, WithJsonSchema
from pydantic import ValidationError as PydanticError

from gateway.errors import INTEGER, ApiError


def _integral(value: Any) -> Any:
    """JSON's ``292.0`` is the integer 292 (JSON Schema says so too); any other float stays a float."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("must be a string, a number, a boolean or null")
    return value


def _digits(value: Any) -> Any:
    """A query's integer is written as one (``-``? digits): not ``""``, ``" 5"``, ``"5.0"`` or ``"1e3"``."""
    if isinstance(value, str) and not INTEGER.fullmatch(value):
        raise ValueError("must be an integer")
    return value


Integer = Annotated[StrictInt, BeforeValidator(_integral)]
QueryInt = Annotated[int, BeforeValidator(_digits)]
Scalar = Annotated[Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})]


class Body(BaseModel):
    """A request body: types as JSON has them (no ``"5"`` for 5, no ``true`` for 1)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Query(BaseModel):
    """A query string: every value arrives as text, so integers are read from their digits (lax mode), but
    a present value must still be written as one (an empty ``limit=`` is refused, not taken as the default)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Answer(BaseModel):
    """A response body, for the document: routes build their answers as dicts, and the tests check each
    answer against the schema these models generate."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: Mapping[str, Any]) -> M:
    """``body`` (a JSON object or a query string) as ``model``; the first problem is a 400 naming its field."""
    try:
        return model.model_validate(dict(body))
    except PydanticError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = ".".join(str(p) for p in loc)
        # a resolution's keys are form field ids, and a form's errors name the field id alone (as a2ui does);
        # elsewhere a nested field is named by its dotted path (``evaluator.plugin``), as the mesh names them
        field = str(loc[1]) if len(loc) > 1 and loc[0] == "resolution" else where or None
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"{where or 'body'}: {message}", field=field) from None
