"""JSON Schema `pattern` with ECMA-262's `$`: the end of the string, nothing after.

jsonschema matches `pattern` with Python's `re.search`, whose `$` also matches before a final
newline, so `"^[A-Z0-9-]{3,32}$"` accepted `"ABC\\n"` (and the users' login pattern a login
ending in a newline). Each `$` outside a character class is read as `\\Z`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError


@lru_cache(maxsize=1024)
def ecma_anchors(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled with each unescaped `$` outside `[...]` turned into `\\Z`."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_anchors(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# types-jsonschema declares extend without types.
SchemaValidator: Any = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]
