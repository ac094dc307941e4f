"""Imports a json-server db.json into the patients table."""
