"""Faces: detection with five landmarks, similarity alignment, quality and identity embeddings."""
