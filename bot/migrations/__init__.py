"""Alembic migrations. ``HEAD`` names the newest revision; a test keeps it equal to Alembic's head."""

HEAD = "0001"
