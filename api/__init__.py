"""The Patient Registry HTTP API."""
