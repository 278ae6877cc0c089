"""The embedded database: the storage seam on SQLite (standard library `sqlite3`).

Modules, each one idea:

- `codec`: documents <-> JSON text, with ObjectIds, booleans and dates as tagged strings that
  keep their type and sort in MongoDB's order (the argument is in its docstring); the shapes
  (paths holding arrays or objects) a write reveals.
- `sql`: quoting, JSON paths, the `Node`/`Leaf` an operator reads a value from.
- `compiler`: MongoDB queries -> SQL WHERE, MongoDB's semantics (arrays, missing vs null,
  type bracketing, `$elemMatch`, `$regex` through RE2...).
- `sorting`, `sortkeys`: MongoDB sort order across types -> ORDER BY.
- `projection`, `updates`: MongoDB projections and update operators on decoded documents.
- `functions`: the SQL functions every connection registers (RE2, BSON order keys).
- `schema`: tables, expression indexes, the shapes, TTL and index bookkeeping.
- `folder`: STORE_DATA_DIR: checks, the one-server lock, connection settings (durability: why
  WAL with synchronous=NORMAL keeps every acknowledged write through a kill -9).
- `runner`: one writer thread, reader threads, deadlines through the progress handler, SQLite
  errors -> StoreErrors.
- `collection`, `storage`: the seam itself.

Raises only StoreErrors. Imports nothing of ours above `errors`, `regex` and `settings`.
"""

from storeengine.storage.sqlite.folder import DataDirError
from storeengine.storage.sqlite.storage import SqliteStorage

__all__ = ["DataDirError", "SqliteStorage"]
