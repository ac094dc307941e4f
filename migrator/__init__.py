"""Applies the yoyo SQL migrations under a PostgreSQL advisory lock."""
