"""Training of the triplet projection head on precomputed backbone embeddings."""
