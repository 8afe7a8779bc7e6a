"""The settings as ``growml settings`` lists them: path, default, kind in words, meaning.

A kind is read off the pydantic field: its choices, its type and its bounds
(``list of integers from 1 to 65536``, ``number > 0 or none``), so it cannot drift from what
validation accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from growml.config import FitConfig, setting_fields


@dataclass(frozen=True)
class SettingInfo:
    """One dotted setting as ``growml settings`` lists it."""

    path: str
    default: Any
    kind: str  # the choices (a | b | c), or the type of value
    meaning: str


def setting_reference(model: type[BaseModel] = FitConfig, prefix: str = "") -> list[SettingInfo]:
    """Every dotted setting (after ``prefix``, like ``tune.``) with its default, its choices or
    kind, and what it means."""
    return [
        SettingInfo(
            path=path,
            default=field.get_default(call_default_factory=True),
            kind=_kind(field.annotation, field.metadata),
            meaning=field.description or "",
        )
        for path, field in setting_fields(model, prefix)
    ]


_NOUNS = {
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    str: ("text", "texts"),
    bool: ("true or false", "true or false"),
}


def _kind(annotation: Any, constraints: Sequence[Any] = (), plural: bool = False) -> str:
    """A setting's type as a user reads it: ``Literal["a", "b"]`` → ``a | b``;
    ``float | None`` with ``gt=0`` → ``number > 0 or none``; ``list[int]`` with items of
    ``ge=1`` → ``list of integers ≥ 1``."""
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        base, *extra = arguments
        return _kind(base, [*constraints, *_flatten(extra)], plural)
    if origin is Literal:
        return " | ".join(str(choice) for choice in arguments)
    if type(None) in arguments:
        rest = [_kind(a, constraints, plural) for a in arguments if a is not type(None)]
        return " or ".join(rest) + " or none"
    if origin is list:
        return "list of " + _kind(arguments[0], plural=True)
    if origin is dict:
        return "mapping"
    noun = _NOUNS[annotation][plural] if annotation in _NOUNS else str(annotation)
    return " ".join([noun, *_range(constraints)])


def _flatten(markers: Sequence[Any]) -> list[Any]:
    """The constraints of ``Annotated`` markers (a ``Field(ge=1)`` holds its own)."""
    found: list[Any] = []
    for marker in markers:
        found.extend(marker.metadata if isinstance(marker, FieldInfo) else [marker])
    return found


# Bounds as users read them, lower bounds first.
_BOUNDS = {
    annotated_types.Ge: ("ge", "≥"),
    annotated_types.Gt: ("gt", ">"),
    annotated_types.Le: ("le", "≤"),
    annotated_types.Lt: ("lt", "<"),
}


def _range(constraints: Sequence[Any]) -> list[str]:
    """``[Ge(1), Le(8)]`` → ``["from 1 to 8"]``; ``[Gt(0), Lt(1)]`` → ``["> 0 and < 1"]``."""
    given = {type(c): getattr(c, _BOUNDS[type(c)][0]) for c in constraints if type(c) in _BOUNDS}
    if annotated_types.Ge in given and annotated_types.Le in given:
        return [f"from {given[annotated_types.Ge]} to {given[annotated_types.Le]}"]
    parts = [f"{sign} {given[kind]}" for kind, (_, sign) in _BOUNDS.items() if kind in given]
    return [" and ".join(parts)] if parts else []
