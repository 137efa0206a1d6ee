"""The indexer: Parquet catalog segments and FAISS face shards written from the result topics."""
