"""Camera health: history (online intervals, fault episodes, stream statistics, recording completeness),
KPIs and the daily inspection report, all computed from the catalog and the recordings."""
