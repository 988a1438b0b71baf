"""Entrypoints: the composition root, and what users run (library, CLI, HTTP)."""
