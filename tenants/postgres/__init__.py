"""Django's PostgreSQL backend, plus the lazily applied row-level-security tenant setting (base.py)."""
