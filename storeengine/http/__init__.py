"""HTTP: routes, endpoints, middleware, the error envelope, the OpenAPI document, the console.

Parse -> service -> response: the only layer that knows status codes and Starlette. Imports
`auth`, `store`, `model`, `core`; never `realtime` (SSE reads the feed's tail from the context).
"""
