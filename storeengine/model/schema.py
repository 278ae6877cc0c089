"""Schema registry: store definitions from JSON Schema files, compiled once, hot-reloaded."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError as JsonSchemaError

from storeengine.core.documents import split
from storeengine.core.errors import Invalid, NotFound
from storeengine.core.formats import DATETIME, OBJECTID, convert, parse_datetime, parse_objectid
from storeengine.core.jsonio import to_json_form
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.jsonrefs import unresolved
from storeengine.model.messages import describe, json_path
from storeengine.model.patterns import SchemaValidator
from storeengine.model.references import IMPLICIT, Reference, parse_references

log = logging.getLogger(__name__)

SYSTEM_FORMATS = {
    "_id": OBJECTID, "owner": OBJECTID, "group": OBJECTID, "access": OBJECTID,
    "branch": OBJECTID, "createdAt": DATETIME, "updatedAt": DATETIME,
}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
RESERVED = frozenset({"auth", "users", "groups", "acl"})
# Internal state of the built-in stores (auth bookkeeping on users): never leaves the server.
_BUILTIN_HIDDEN = frozenset({"_auth"})
OPERATIONS = ("create", "read", "update", "delete")
DEFAULT_ACL: Mapping[str, tuple[str, ...]] = {
    "create": ("authenticated",),
    "read": ("owner", "group", "access", "branch"),
    "update": ("owner", "access"),
    "delete": ("owner",),
}
# The rule names a schema may use; each rule is defined once, in acl.RULES.
PUBLIC_RULES = acl.PUBLIC_RULES
BUILTIN_RULES = acl.BUILTIN_RULES

_FORMATS = FormatChecker(formats=())
_FORMATS.checks(OBJECTID)(lambda v: not isinstance(v, str) or parse_objectid(v) is not None)
_FORMATS.checks(DATETIME)(lambda v: not isinstance(v, str) or parse_datetime(v) is not None)


class SchemaError(Exception):
    """A schema file that cannot define a store; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class IndexSpec:
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


@dataclass(frozen=True, eq=False)
class StoreSchema:
    """One store: its raw schema and everything derived from it, computed once per version."""

    name: str
    raw: Mapping[str, Any]
    acl: Mapping[str, tuple[str, ...]]
    indexes: tuple[IndexSpec, ...]
    properties: Mapping[str, Mapping[str, Any]]
    formats: Mapping[str, str]  # dotted path -> objectid | date-time (arrays: per element)
    write_only: frozenset[str]
    hidden: frozenset[str]  # never leave the server: write-only values, internal state
    validator: Draft202012Validator = field(repr=False)
    history: bool = False  # "x-history": keep every change for ever
    # Reference properties (x-ref) and the implicit `owner` -> users, `group` -> groups.
    references: Mapping[str, Reference] = field(default_factory=lambda: dict(IMPLICIT))

    @property
    def declared_references(self) -> list[Reference]:
        """The references a write may set (owner and group have rules of their own)."""
        return [r for r in self.references.values() if r.prop not in IMPLICIT]
    # Property rules (API.md 15): property -> the x-acl rules that may read / change it.
    read_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    write_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def admin_only(self) -> frozenset[str]:
        """Properties only admins may change (`x-admin-only: true` is `"x-write": []`)."""
        return frozenset(p for p, rules in self.write_rules.items() if not rules)

    def seen_by(self, principal: Principal) -> StoreSchema:
        """The store as one caller may query it: the properties they may not read everywhere are
        unknown to `only`, filters, sorts and groups (the same 400 as an undeclared field)."""
        unreadable = acl.unqueryable(principal, self)
        return replace(self, hidden=self.hidden | unreadable) if unreadable else self

    def field_format(self, path: str) -> str | None:
        return SYSTEM_FORMATS.get(path) or self.formats.get(path)

    def knows_field(self, path: str) -> bool:
        """Declared property (or a sub-field of one) or system field, and not write-only."""
        parts = path.split(".")
        if any(not part or part.startswith("$") for part in parts):
            return False
        head = parts[0]
        if path in SYSTEM_FORMATS:
            return True
        return head in self.properties and head not in self.hidden and head not in SYSTEM_FORMATS \
            and _holds(self.properties[head], parts[1:])

    def validate(self, doc: Mapping[str, Any], hashed: Collection[str] = ()) -> None:
        """Raise Invalid with every failing field (messages never echo the value). `hashed`: the
        write-only properties `doc` holds as stored (hashes, not what a client sent): present, but
        not checked against the schema, which describes the value sent (a `pattern` on a PIN
        failed every later write of its entity against the PIN's hash)."""
        fields: dict[str, str] = {}
        sent = {k: v for k, v in doc.items() if k not in hashed} if hashed else doc
        for error in self.validator.iter_errors(sent):
            for path, message in describe(error):
                fields.setdefault(path or "(body)", message)
        for name in hashed:
            fields.pop(name, None)  # "is required": it is there
        if fields:
            raise Invalid(fields=fields)

    def problems(self, stored: Mapping[str, Any]) -> dict[str, str]:
        """What a stored entity fails of this schema: the messages of a write's 400 (empty: it fits)."""
        _, body = split(stored)
        try:
            self.validate(to_json_form(body), self.write_only & body.keys())
        except Invalid as exc:
            return dict(exc.fields or {})
        return {}

    def to_storage(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Turn `objectid` / `date-time` strings into ObjectId / BSON dates."""
        if not self.formats:
            return doc
        return {key: _convert(value, key, self.formats) for key, value in doc.items()}


def _holds(schema: Any, parts: list[str]) -> bool:
    """May a value of `schema` hold the sub-path `parts` (MongoDB's: through an array to its
    elements, or to one by position)? A string has no `name.x`, nor a closed object an
    undeclared member; a schema that does not say (no `type`, `true`, `$ref`) may hold any."""
    if not parts or not isinstance(schema, dict) or "type" not in schema:
        return True
    kinds = set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    if "array" in kinds:
        items = schema.get("items", True)
        if (parts[0].isdigit() and _holds(items, parts[1:])) or _holds(items, parts):
            return True
    if "object" in kinds:
        properties = schema.get("properties")
        if isinstance(properties, dict) and parts[0] in properties:
            return _holds(properties[parts[0]], parts[1:])
        return not (schema.get("additionalProperties") is False and not schema.get("patternProperties"))
    return False  # a scalar, or an array whose elements hold no such path


def _convert(value: Any, path: str, formats: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _convert(v, f"{path}.{k}", formats) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v, path, formats) for v in value]
    return convert(formats.get(path), value)


def _name_problems(name: str, builtin: bool) -> list[str]:
    if builtin:
        return []
    if not NAME_PATTERN.fullmatch(name):
        return [f"store name {name!r} must match {NAME_PATTERN.pattern}"]
    return [f"store name {name!r} is reserved"] if name in RESERVED else []


def _type_problems(raw: dict[str, Any]) -> list[str]:
    return [] if raw.get("type") == "object" else ['schema must have "type": "object"']


def _json_schema_problems(raw: dict[str, Any]) -> list[str]:
    """A valid JSON Schema, whose every `$ref` resolves within the file (jsonrefs.py: only once it
    is valid, since its shape is what the resolver walks)."""
    try:
        Draft202012Validator.check_schema(raw)
    except JsonSchemaError as exc:
        return [f"not a valid JSON Schema 2020-12: {exc.message} at {json_path(exc.path) or '(root)'}"]
    return unresolved(raw)


def _property_problems(raw: dict[str, Any]) -> list[str]:
    return [problem for prop in _properties(raw) if (problem := _property_problem(prop))]


def _property_problem(prop: str) -> str:
    if prop in SYSTEM_FORMATS:
        return f"property {prop!r} is a system field"
    if prop.startswith(("_", "$")) or "." in prop:
        return f"property {prop!r}: names may not start with '_' or '$' or contain '.'"
    return ""


def _history_problems(raw: dict[str, Any]) -> list[str]:
    return [] if isinstance(raw.get("x-history", False), bool) else ["x-history must be true or false"]


# Every check of a schema object; each returns its problems, so one answer lists them all.
_CHECKS: tuple[Callable[[dict[str, Any]], list[str]], ...] = (
    _type_problems, _json_schema_problems, _property_problems, _history_problems,
)


def _properties(raw: dict[str, Any]) -> dict[str, Any]:
    properties = raw.get("properties", {})
    return properties if isinstance(properties, dict) else {}


def _flagged(properties: Mapping[str, Any], keyword: str) -> frozenset[str]:
    """The properties whose schema sets `keyword` to true (writeOnly, x-admin-only)."""
    return frozenset(p for p, sub in properties.items() if isinstance(sub, dict) and sub.get(keyword) is True)


def compile_schema(name: str, raw: Any, *, builtin: bool = False) -> StoreSchema:
    """Check a store definition and compile it; raise SchemaError listing every problem."""
    problems = _name_problems(name, builtin)
    if not isinstance(raw, dict):
        raise SchemaError([*problems, "schema must be a JSON object"])
    for check in _CHECKS:
        problems.extend(check(raw))
    properties = _properties(raw)
    rules = _parse_acl(raw.get("x-acl"), builtin, problems)
    indexes = _parse_indexes(raw.get("x-indexes"), set(properties) | set(SYSTEM_FORMATS), problems)
    references = {**IMPLICIT, **parse_references(properties, problems)}
    read_rules, write_rules = _parse_property_rules(properties, builtin, problems)
    if problems:
        raise SchemaError(problems)
    formats: dict[str, str] = {}
    for prop, sub in properties.items():
        _collect_formats(sub, prop, formats)
    write_only = _flagged(properties, "writeOnly")
    return StoreSchema(
        name=name, raw=raw, acl=rules, indexes=indexes, properties=properties, formats=formats,
        write_only=write_only,
        hidden=write_only | (_BUILTIN_HIDDEN if builtin else frozenset()),
        validator=SchemaValidator(raw, format_checker=_FORMATS),  # `$` as in ECMA-262 (patterns.py)
        history=raw.get("x-history") is True, references=references, read_rules=read_rules,
        write_rules=write_rules,
    )


def _parse_property_rules(properties: Mapping[str, Any], builtin: bool, problems: list[str]
                          ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """`x-read` / `x-write` of each top-level property (rules of x-acl); `x-admin-only: true`
    is `"x-write": []`. An unknown rule is a schema problem, never a silent refusal."""
    read: dict[str, tuple[str, ...]] = {}
    write: dict[str, tuple[str, ...]] = {}
    for prop, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        if nested := sorted(_below(sub, _TOP_LEVEL_KEYWORDS)):
            problems.append(f"property {prop!r}: {', '.join(nested)} apply to top-level properties only "
                            "(below one they would be ignored)")
        admin_only = sub.get("x-admin-only", False)
        if not isinstance(admin_only, bool):
            problems.append(f"property {prop!r}: x-admin-only must be true or false")
        elif admin_only and "x-write" in sub:
            problems.append(f"property {prop!r}: give x-admin-only or x-write, not both")
        elif admin_only:
            write[prop] = ()
        for keyword, out in (("x-read", read), ("x-write", write)):
            if keyword in sub and (rules := _rules_of(prop, keyword, sub[keyword], builtin, problems)) is not None:
                out[prop] = rules
    return read, write


def _rules_of(prop: str, keyword: str, rules: Any, builtin: bool, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        problems.append(f"property {prop!r}: {keyword} must be a list of rule names")
    elif bad := [r for r in rules if not acl.is_rule(r, builtin=builtin)]:
        problems.append(f"property {prop!r}: {keyword}: unknown rules {bad}")
    else:
        return tuple(rules)
    return None


# Keywords the engine reads on top-level properties only: below one, a rule would be ignored and a
# `writeOnly` value stored in the clear, returned and queried.
_TOP_LEVEL_KEYWORDS = frozenset({"x-read", "x-write", "x-admin-only", "writeOnly"})


def _below(schema: dict[str, Any], keywords: frozenset[str]) -> set[str]:
    """Which of `keywords` are set (not false) anywhere inside `schema` but on it (no recursion)."""
    found: set[str] = set()
    stack: list[Any] = list(schema.values())
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found |= {k for k in keywords & node.keys() if node[k] not in (False, None)}
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return found


def _collect_formats(schema: Any, path: str, out: dict[str, str]) -> None:
    if not isinstance(schema, dict):
        return
    if schema.get("format") in (OBJECTID, DATETIME):
        out[path] = schema["format"]
    for key, sub in (schema.get("properties") or {}).items():
        _collect_formats(sub, f"{path}.{key}", out)
    _collect_formats(schema.get("items"), path, out)


def _parse_acl(value: Any, builtin: bool, problems: list[str]) -> Mapping[str, tuple[str, ...]]:
    parsed = dict(DEFAULT_ACL)
    if value is None:
        return parsed
    if not isinstance(value, dict):
        problems.append("x-acl must be an object")
        return parsed
    for op, rules in value.items():
        if op not in OPERATIONS:
            problems.append(f"x-acl: unknown operation {op!r} (use {', '.join(OPERATIONS)})")
            continue
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            problems.append(f"x-acl.{op} must be a list of rule names")
            continue
        bad = [r for r in rules if not acl.is_rule(r, builtin=builtin)]
        if bad:
            problems.append(f"x-acl.{op}: unknown rules {bad}")
        parsed[op] = tuple(rules)
    return parsed


def _parse_indexes(value: Any, known: set[str], problems: list[str]) -> tuple[IndexSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append("x-indexes must be a list")
        return ()
    specs = []
    for i, item in enumerate(value):
        fields = item.get("fields") if isinstance(item, dict) else None
        if not isinstance(fields, dict) or not fields:
            problems.append(f"x-indexes[{i}].fields must be a non-empty object")
            continue
        if set(item) - {"fields", "unique"} or not isinstance(item.get("unique", False), bool):
            problems.append(f"x-indexes[{i}]: only 'fields' and a boolean 'unique' are allowed")
            continue
        keys = []
        for path, direction in fields.items():
            if path.split(".", 1)[0] not in known or path.startswith("$"):
                problems.append(f"x-indexes[{i}]: {path!r} is not a declared property")
            elif direction not in (1, -1) or isinstance(direction, bool):
                problems.append(f"x-indexes[{i}]: direction of {path!r} must be 1 or -1")
            else:
                keys.append((path, direction))
        specs.append(IndexSpec(tuple(keys), item.get("unique", False)))
    return tuple(specs)


def load_builtin(name: str) -> StoreSchema:
    text = resources.files("storeengine.model.builtin").joinpath(f"{name}.json").read_text("utf-8")
    return compile_schema(name, json.loads(text), builtin=True)


def load_file(path: Path) -> StoreSchema:
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SchemaError([f"cannot read JSON: {exc}"]) from None
    return compile_schema(path.stem, raw)


def check_dir(directory: Path) -> dict[str, list[str]]:
    """Every problem of every file in a folder (for `storeengine check-schemas`)."""
    if not directory.is_dir():
        return {str(directory): ["not a directory"]}
    report: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            load_file(path)
            report[path.name] = []
        except SchemaError as exc:
            report[path.name] = exc.problems
    return report


class Registry:
    """The live set of stores. `rescan()` picks up added, changed and removed files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._builtin = {n: load_builtin(n) for n in ("users", "groups")}
        self._stores: dict[str, StoreSchema] = {}
        self._errors: dict[str, str | None] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        # Moves on every change of a store or its error, so derived views (OpenAPI) know to rebuild.
        self.version = 0

    def get(self, name: str) -> StoreSchema:
        store = self._builtin.get(name) or self._stores.get(name)
        if store is None:
            raise NotFound(f"Unknown store: {name}")
        return store

    def all(self) -> list[StoreSchema]:
        return [*self._builtin.values(), *self._stores.values()]

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in sorted({*self._stores, *self._errors}):
            store = self._stores.get(name)
            out[name] = {"schema": store.raw if store else None, "error": self._errors.get(name)}
        return out

    def rescan(self) -> list[StoreSchema]:
        """Reload what changed on disk; return the stores that were (re)loaded."""
        try:
            entries = {e.name[:-5]: e for e in os.scandir(self.directory) if e.name.endswith(".json") and e.is_file()}
        except OSError as exc:
            log.error("cannot read schema directory %s: %s", self.directory, exc)
            return []
        loaded = []
        for name in set(self._seen) - set(entries):
            self._seen.pop(name)
            self._errors.pop(name, None)
            self.version += 1
            if self._stores.pop(name, None) is not None:
                log.info("store %r removed", name)
        for name, entry in entries.items():
            stat = entry.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if self._seen.get(name) == signature:
                continue
            self._seen[name] = signature
            self.version += 1
            try:
                store = load_file(Path(entry.path))
            except SchemaError as exc:
                self._errors[name] = str(exc)
                kept = " (keeping its last valid schema)" if name in self._stores else ""
                log.error("schema %s is invalid%s: %s", entry.name, kept, exc)
                continue
            self._errors[name] = None
            self._stores[name] = store
            loaded.append(store)
            log.info("store %r loaded from %s", name, entry.name)
        return loaded

    def set_error(self, name: str, message: str | None) -> None:
        self._errors[name] = message
        self.version += 1
