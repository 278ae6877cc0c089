"""Authentication: passwords, tokens, sessions, API keys, throttling."""
