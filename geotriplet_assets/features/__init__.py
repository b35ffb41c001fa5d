"""Stage 2: backbone features of every catalogued image: weights, ONNX export, the embedder
and the HDF5 shards it writes."""
