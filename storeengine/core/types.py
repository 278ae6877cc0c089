"""Type aliases shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A document as the database and the engine hold it: BSON-shaped values (ObjectId, datetime).
Doc = dict[str, Any]
# Sort keys, each with 1 (ascending) or -1 (descending).
Sort = Sequence[tuple[str, int]]
