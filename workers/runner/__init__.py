"""What runs workers: the registry of worker names and the embedded one-process run (``tubeline up``)."""
