"""The HTTP layer: parse -> service -> response. The only place that knows status codes."""
