"""The catalog format: Parquet kinds, schemas and segment keys, and the FAISS shards built from it."""
