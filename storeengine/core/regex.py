"""`$regex` checked and matched by RE2, a linear-time engine: no pattern can stall a scan.

MongoDB matches with PCRE, which accepts backreferences, lookaround, atomic groups and
possessive quantifiers; those need backtracking (exponential in the worst case), so they
are refused up front with a 400 that says why, on every database."""

from __future__ import annotations

from typing import Any

import re2

from storeengine.core.errors import BadRequest

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the client's mistake, not a server log line
# RE2 error text -> what the client wrote that needs backtracking.
_BACKTRACKING = (
    ("(?=", "a lookahead"), ("(?!", "a lookahead"), ("(?<=", "a lookbehind"), ("(?<!", "a lookbehind"),
    ("(?>", "an atomic group"), ("++", "a possessive quantifier"), ("*+", "a possessive quantifier"),
    ("?+", "a possessive quantifier"),
)


def compile_linear(pattern: str) -> Any:
    """The RE2 program for `pattern`, or 400 explaining what is refused."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit():
            raise BadRequest(_refusal("a backreference")) from None
        for marker, what in _BACKTRACKING:
            if marker in detail:
                raise BadRequest(_refusal(what)) from None
        raise BadRequest(f"filter: $regex is not a valid regular expression (RE2 syntax): {detail}") from None


def _refusal(what: str) -> str:
    return (f"filter: $regex uses {what}, which needs a backtracking engine; this server matches "
            "regular expressions in linear time (RE2 syntax) so that no pattern can stall it")
