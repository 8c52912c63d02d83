"""Reading contract messages the tolerant way: unknown fields are dropped, counted and logged, never refused.

Contract v1 grows by optional fields (docs/asyncapi.yaml), so a reader meets fields added after it
was built: a newer gateway's heartbeat, a newer ingest's ack. Each service reads its payloads through
one `ContractReader`, which hands back the model as this reader knows it (no unknown field left in
it, so nothing it stores or publishes again carries them) and counts each message that carried
unknown fields, by the name of that message, on the service's own counter. The field names go to the
log, once per name: they are not metric labels, since any writer can make up any number of them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Protocol, TypeVar, get_args

from pydantic import BaseModel

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Distinct unknown field names logged per reader; past it they are only counted.
_MAX_NAMES_LOGGED = 100


class LabelledCounter(Protocol):
    """The part of a prometheus_client Counter with one label (`message`) the reader uses."""

    def labels(self, *values: str) -> Any: ...


def _mentions_model(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in get_args(annotation))


@functools.cache
def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` that may hold models themselves (directly or in a list)."""
    return tuple(name for name, info in model.model_fields.items() if _mentions_model(info.annotation))


def drop_unknown(message: M, found: list[str] | None = None, *, path: str = "") -> M:
    """`message` without the unknown fields pydantic kept aside, at any depth; their dotted paths go to `found`.

    The message itself comes back when it has none (the common case costs a look per model).
    """
    changes: dict[str, object] = {}
    for name in _nested_fields(type(message)):
        value = getattr(message, name)
        if isinstance(value, BaseModel):
            cleaned: object = drop_unknown(value, found, path=f"{path}{name}.")
            if cleaned is not value:
                changes[name] = cleaned
        elif isinstance(value, list):
            items = [drop_unknown(item, found, path=f"{path}{name}[].") if isinstance(item, BaseModel) else item
                     for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                changes[name] = items
    extra = message.__pydantic_extra__
    if not extra and not changes:
        return message
    if found is not None and extra:
        found.extend(f"{path}{key}" for key in extra)
    # Every value was validated already: rebuild from the known fields alone, without validating again.
    known = {name: getattr(message, name) for name in type(message).model_fields}
    return type(message).model_construct(message.model_fields_set, **{**known, **changes})


class ContractReader:
    """Parses one service's incoming contract messages; `unknown_fields` counts those with unknown fields."""

    def __init__(self, service: str, unknown_fields: LabelledCounter | None = None) -> None:
        self.service = service
        self.unknown_fields = unknown_fields
        self._logged: set[str] = set()

    def parse(self, model: type[M], payload: bytes | str) -> M:
        """The message in `payload`; raises pydantic.ValidationError for one that breaks the contract."""
        return self.tolerate(model.model_validate_json(payload))

    def tolerate(self, message: M) -> M:
        """`message` without its unknown fields, which are counted and logged."""
        found: list[str] = []
        known = drop_unknown(message, found)
        if found:
            name = type(message).__name__
            if self.unknown_fields is not None:
                self.unknown_fields.labels(name).inc()
            new = [f for f in found if f"{name}.{f}" not in self._logged]
            if new and len(self._logged) < _MAX_NAMES_LOGGED:
                self._logged.update(f"{name}.{f}" for f in new)
                log.info("%s: %s carries fields this version does not know, ignored: %s", self.service, name,
                         ", ".join(sorted(set(new))))
        return known
