"""Auth: passwords, tokens, sessions, API keys, login throttling, the first admin.

Kept in the database through the storage seam, so every process shares it. Imports `store`,
`model`, `storage`, `core`.
"""
