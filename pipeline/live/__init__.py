"""Live video: the original stream's packets fanned out from ingest to viewers (see docs/live.md)."""
