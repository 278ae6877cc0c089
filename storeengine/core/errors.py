"""Domain errors. No HTTP here: the http layer maps `status` and `tag` to the envelope."""

from __future__ import annotations

from collections.abc import Mapping


class StoreError(Exception):
    status: int = 500
    tag: str = "error_internal"
    default_message: str = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: Mapping[str, str] | None = None,
        extra_tags: tuple[str, ...] = (),
    ) -> None:
        self.message = message or self.default_message
        self.fields = dict(fields) if fields else None
        self.extra_tags = extra_tags
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        """The error envelope of API.md section 2 (shared by HTTP and Socket.IO acks)."""
        tag = "error_validation" if self.fields and self.status == 400 else self.tag
        out: dict[str, object] = {
            "success": False,
            "code": str(self.status),
            "message": self.message,
            "tags": [tag, *self.extra_tags],
        }
        if self.fields:
            out["fields"] = self.fields
        return out


class BadRequest(StoreError):
    status, tag, default_message = 400, "error_bad_request", "Bad request"


class Invalid(BadRequest):
    default_message = "Validation failed"


class Unauthorized(StoreError):
    status, tag, default_message = 401, "error_unauthorized", "Unauthorized"


class Forbidden(StoreError):
    status, tag, default_message = 403, "error_forbidden", "Forbidden"


class NotFound(StoreError):
    status, tag, default_message = 404, "error_not_found", "Not found"


class MethodNotAllowed(StoreError):
    status, tag, default_message = 405, "error_method_not_allowed", "Method not allowed"


class Conflict(StoreError):
    status, tag, default_message = 409, "error_conflict", "Conflict"


class Gone(StoreError):
    status, tag, default_message = 410, "error_gone", "Gone"


class PreconditionFailed(StoreError):
    status, tag, default_message = 412, "error_precondition_failed", "Precondition failed"


class PayloadTooLarge(StoreError):
    status, tag, default_message = 413, "error_payload_too_large", "Payload too large"


class UnsupportedMediaType(StoreError):
    status, tag = 415, "error_unsupported_media_type"
    default_message = "Content-Type must be application/json"


class TooManyRequests(StoreError):
    status, tag, default_message = 429, "error_too_many_requests", "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(StoreError):
    status, tag, default_message = 503, "error_unavailable", "Database unavailable"
