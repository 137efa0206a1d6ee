"""Search: the query layer over the Parquet catalog and the FAISS face shards (see ``service``)."""
