"""Tubeline core: types, configuration, bus and object-store interfaces, worker runtime."""
