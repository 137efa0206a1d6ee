"""ML models behind small protocols; the only place that imports inference runtimes.

Entry points (imported from their modules; this package imports nothing at import time):
``models.zoo.ModelZoo`` (factories), ``models.protocols`` (Detector, PlateDetector, PlateReader, FaceDetector,
FaceEmbedder), ``models.registry.load_registry``, ``models.install`` (offline install / verify) and
``models.runtime`` (ONNX Runtime sessions and their errors). See docs/models.md.
"""
