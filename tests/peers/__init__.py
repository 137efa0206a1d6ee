"""Peers the ingest tests run against: media generation, the gst-rtsp-server launcher, the PS-over-RTP
sender and the SIPp device scenario. Test-only code; nothing under ``pipeline``/``workers`` imports it."""
