"""Workers (ingest, detect, enrich, index, api) and the tubeline command line. Nothing imports this package."""
