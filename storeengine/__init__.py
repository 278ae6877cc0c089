"""storeengine: a schema-driven store server over MongoDB."""

__version__ = "0.1.0"
