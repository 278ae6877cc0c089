"""Issue 19: the OpenAPI document stays valid 3.1 for every valid schema file, including files
whose properties are named like list parameters (`meta`, `limit`, ...) or hold characters that
a `$ref` must escape. Schema files are generated (hypothesis); each is loaded by the registry as
a dropped file would be, and the whole document is checked by openapi-spec-validator."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from storeengine.http.openapi import build
from storeengine.model.schema import Registry

# The list parameters of API.md 7, and those of sections 13 and 14 (expand, after, via).
PARAMETER_NAMES = ["offset", "limit", "only", "meta", "from", "to", "begin", "end", "filter", "sort", "expand",
                   "after", "via"]
NAMES = st.one_of(
    st.sampled_from(PARAMETER_NAMES),
    st.sampled_from(["a/b", "~x", "a b", "100%", "#frag", "é", "{id}", "x?y", "Limit", "a'b", "\"q\""]),
    st.text(min_size=1, max_size=8),
).filter(lambda name: not name.startswith(("_", "$")) and "." not in name)

SCALARS = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
                          optional={"description": st.text(max_size=10), "minimum": st.integers(-5, 5),
                                    "maxLength": st.integers(0, 9), "writeOnly": st.booleans(),
                                    "x-admin-only": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("string"),
                           "format": st.sampled_from(["objectid", "date-time", "email", "uuid"])}),
    st.fixed_dictionaries({"type": st.lists(st.sampled_from(["string", "integer", "null"]), min_size=1, max_size=3,
                                            unique=True)}),
    st.fixed_dictionaries({"enum": st.lists(st.one_of(st.text(max_size=4), st.integers(), st.none()), min_size=1,
                                            max_size=3, unique_by=lambda v: json.dumps(v))}),
    st.booleans(),  # `true` / `false` are valid property schemas too
    st.just({"$ref": "#/$defs/shared"}),
)


def _composite(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("array"), "items": children}),
        st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(NAMES, children, max_size=3)},
                              optional={"additionalProperties": st.booleans()}),
        st.fixed_dictionaries({"anyOf": st.lists(children, min_size=1, max_size=2)}),
    )


PROPERTY = st.recursive(SCALARS, _composite, max_leaves=6)


@st.composite
def schema_files(draw: st.DrawFn) -> dict[str, Any]:
    properties = draw(st.dictionaries(NAMES, PROPERTY, max_size=8))
    raw: dict[str, Any] = {"type": "object", "properties": properties, "$defs": {"shared": {"type": "string"}}}
    if properties and draw(st.booleans()):
        raw["required"] = draw(st.lists(st.sampled_from(sorted(properties)), unique=True, max_size=3))
    if draw(st.booleans()):
        raw["additionalProperties"] = False
    if draw(st.booleans()):
        raw["x-history"] = True
    if draw(st.booleans()):
        raw["x-acl"] = {"read": draw(st.lists(st.sampled_from(["owner", "group", "authenticated"]), max_size=2))}
    return raw


def _document(files: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        for name, raw in files.items():
            (Path(folder) / f"{name}.json").write_text(json.dumps(raw))
        registry = Registry(Path(folder))
        loaded = [store.name for store in registry.rescan()]
        return build(registry), loaded


def _check(doc: dict[str, Any]) -> None:
    validate(doc)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            names = Counter((p["name"], p["in"]) for p in op.get("parameters", []))
            assert max(names.values(), default=1) == 1, (path, method, names)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), schema_files(), min_size=1,
                       max_size=3))
def test_the_document_is_valid_for_generated_schema_files(files: dict[str, dict[str, Any]]) -> None:
    doc, _ = _document(files)
    _check(doc)


def test_properties_named_like_list_parameters_leave_the_parameters_alone() -> None:
    raw = {"type": "object", "properties": {name: {"type": "integer"} for name in PARAMETER_NAMES}}
    doc, loaded = _document({"clash": {**raw, "properties": {**raw["properties"], "price": {"type": "number"}}}})
    assert loaded == ["clash"]
    _check(doc)
    params = {p["name"]: p for p in doc["paths"]["/api/v1/clash"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 10000 and params["meta"]["schema"]["type"] == "boolean"
    assert params["price"]["description"] == "equality on `price`"
    for name in ("expand", "after", "via"):  # the parameters of sections 13 and 14, never an equality
        assert params.get(name, {}).get("description") != f"equality on `{name}`"


def test_refs_to_properties_with_pointer_characters_resolve() -> None:
    names = ["a/b", "~x", "100%", "a b", "#frag"]
    doc, _ = _document({"odd": {"type": "object", "properties": {n: {"type": "string"} for n in names}}})
    _check(doc)  # openapi-spec-validator resolves every $ref
    refs = [p["anyOf"][0]["$ref"] for p in doc["components"]["schemas"]["odd.patch"]["properties"].values()]
    assert refs == ["#/components/schemas/odd.body/properties/a~1b", "#/components/schemas/odd.body/properties/~0x",
                    "#/components/schemas/odd.body/properties/100%25",
                    "#/components/schemas/odd.body/properties/a%20b",
                    "#/components/schemas/odd.body/properties/%23frag"]
