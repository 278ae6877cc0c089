"""The command line: `storeengine check-schemas` and the refusals of `storeengine serve` (API.md 5, 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "schemas"
OK = {"type": "object", "properties": {"name": {"type": "string"}}}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any STORE_ setting, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STORE_")}, **extra}


def storeengine(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storeengine", *args], check=False, cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    """A folder with one good file and several bad ones; one has several problems."""
    d = tmp_path / "bad"
    d.mkdir()
    files = {
        "good.json": OK,
        "Upper.json": OK,
        "users.json": OK,
        "arrays.json": {"type": "array"},
        "refs.json": {"type": "object", "properties": {
            "a": {"type": "string", "format": "objectid", "x-ref": "acl"},
            "b": {"type": "array", "items": {"type": "string", "format": "objectid", "x-ref": "_x"}}}},
        # A reference to a store that does not exist yet is fine (writes through it are refused).
        "later.json": {"type": "object", "properties": {"a": {"type": "string", "format": "objectid",
                                                               "x-ref": "not_yet"}}},
        "many.json": {"type": "object", "properties": {"owner": {"type": "string"}},
                      "x-acl": {"read": ["everyone"]}, "x-indexes": [{"fields": {"nope": 1}}]},
    }
    for name, content in files.items():
        (d / name).write_text(json.dumps(content))
    (d / "syntax.json").write_text('{"type": "object",')
    return d


BAD_FILES = {
    "Upper.json": ["'Upper'"],
    "users.json": ["reserved"],
    "arrays.json": ['"type": "object"'],
    "refs.json": ["'a': x-ref: 'acl' is a reserved name", "'b': x-ref must name a store"],
    "many.json": ["'owner'", "everyone", "'nope'"],
    "syntax.json": ["JSON"],
}


def test_check_schemas_accepts_the_example_folder() -> None:
    result = storeengine("check-schemas", str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in EXAMPLES.glob("*.json"):
        assert path.name in result.stdout


def test_check_schemas_reports_every_problem_of_every_file(bad_dir: Path) -> None:
    result = storeengine("check-schemas", str(bad_dir))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = output.splitlines()
    for name, fragments in BAD_FILES.items():
        for fragment in fragments:
            assert any(name in line and fragment in line for line in lines), (name, fragment, output)
    assert "Traceback" not in output
    # The good files are not blamed.
    for good in ("good.json", "later.json"):
        assert not any(good in line and "ok" not in line for line in lines), output


def test_check_schemas_defaults_to_store_schema_dir(bad_dir: Path, tmp_path: Path) -> None:
    result = storeengine("check-schemas", cwd=tmp_path, env=clean_env(STORE_SCHEMA_DIR=str(bad_dir)))
    assert result.returncode != 0
    assert "arrays.json" in result.stdout + result.stderr


def test_check_schemas_defaults_to_the_schemas_folder_of_the_working_directory() -> None:
    result = storeengine("check-schemas", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_schemas_of_a_missing_folder_fails(tmp_path: Path) -> None:
    result = storeengine("check-schemas", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    assert "nowhere" in result.stdout + result.stderr


def test_serve_refuses_several_workers_on_an_in_memory_database(tmp_path: Path) -> None:
    env = clean_env(STORE_SECRET="test-secret-of-at-least-32-bytes!!", STORE_DATA_DIR=":memory:")
    result = storeengine("serve", "--workers", "2", "--port", str(free_port()), "--schemas", str(EXAMPLES),
                         cwd=tmp_path, env=env, timeout=20)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "STORE_DATA_DIR" in output and "workers" in output, output
    assert "Traceback" not in output
