"""The search bundle: the contract between the pipeline, which publishes bundles, and the
retrieval service, which serves them (docs/bundle.md).

Its file layout and `current` pointer, manifest, preprocessing and image decoding, image
table, ONNX model form, search and loading all live here, so that writer and reader cannot
drift apart. NumPy, Pillow, PyArrow, FAISS and ONNX Runtime only: no torch, no Dagster.
"""
