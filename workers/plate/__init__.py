"""Plate recognition on vehicle crops: per-track voting, hotlists and the plate worker (``tubeline worker plate``)."""
