"""`$ref`s of a store's schema file, resolved when the file is loaded.

jsonschema resolves a `$ref` only when a validation meets it: a dangling one (`#/$defs/nope`,
or another document's address, which is never fetched) passed every check of the file and then
failed every write that reached it with a 500. So each must resolve within the file.
"""

from __future__ import annotations

from typing import Any

from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

_BASE = "urn:storeengine:schema"
_DATA = frozenset({"enum", "const", "default", "examples"})  # their values are data, not schemas
_KEYWORDS = ("$ref", "$dynamicRef")


def unresolved(raw: dict[str, Any]) -> list[str]:
    """A problem for each `$ref` / `$dynamicRef` of a valid JSON Schema that does not resolve
    within it (a nested `$id` is the base of what it holds)."""
    problems: list[str] = []
    _walk(raw, Registry().with_resource(_BASE, DRAFT202012.create_resource(raw)).resolver(base_uri=_BASE), "",
          problems, raw)
    return problems


def _walk(node: Any, resolver: Any, path: str, problems: list[str], root: Any) -> None:
    """`resolver`: a referencing.Resolver (not exported by the package)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, resolver, f"{path}[{i}]", problems, root)
        return
    if not isinstance(node, dict):
        return
    if node is not root and isinstance(node.get("$id"), str):
        resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
    for keyword in _KEYWORDS:
        if keyword in node:
            try:
                resolver.lookup(node[keyword])
            except (Unresolvable, TypeError):
                problems.append(f"{path or '(root)'}: {keyword} {node[keyword]!r} does not resolve within the file")
    for key, value in node.items():
        if key not in _DATA:
            _walk(value, resolver, f"{path}.{key}" if path else key, problems, root)
