"""Clip libraries: the SQLite manifest, the builder and its worker."""
