"""Validation messages: a JSON Schema error -> (field path, message) pairs for the 400's `fields`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError


def json_path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


_TYPE_WORDS = {"object": "an object", "array": "an array", "integer": "an integer", "null": "null"}


def describe(error: ValidationError) -> list[tuple[str, str]]:
    """Messages that name the rule, never the value (a value may be a password)."""
    path = json_path(error.absolute_path)
    kind = str(error.validator)
    rule: Any = error.validator_value
    prefix = f"{path}." if path else ""
    if kind == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return [(prefix + name, "is required") for name in rule if name not in present]
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        return [
            (prefix + key, "is not allowed")
            for key in error.instance
            if key not in allowed and not any(p.search(key) for p in patterns)
        ]
    if kind == "type":
        types = rule if isinstance(rule, list) else [rule]
        words = [_TYPE_WORDS.get(t, f"a {t}") for t in types]
        return [(path, "must be " + " or ".join(words))]
    messages = {
        "minLength": f"must be at least {rule} characters",
        "maxLength": f"must be at most {rule} characters",
        "minimum": f"must be >= {rule}",
        "maximum": f"must be <= {rule}",
        "exclusiveMinimum": f"must be > {rule}",
        "exclusiveMaximum": f"must be < {rule}",
        "multipleOf": f"must be a multiple of {rule}",
        "pattern": f"must match the pattern {rule}",
        "format": f"must be a valid {rule}",
        "enum": f"must be one of {json.dumps(rule)}",
        "const": f"must be {json.dumps(rule)}",
        "minItems": f"must have at least {rule} items",
        "maxItems": f"must have at most {rule} items",
        "uniqueItems": "must not contain duplicates",
        "minProperties": f"must have at least {rule} properties",
        "maxProperties": f"must have at most {rule} properties",
    }
    return [(path, messages.get(kind, f"is invalid ({kind})"))]
