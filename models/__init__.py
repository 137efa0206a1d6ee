"""ML models behind small protocols; the only place that imports inference runtimes."""
