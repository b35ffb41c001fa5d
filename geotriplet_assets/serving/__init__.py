"""Stage 5: what the service serves: the exported serving model, the index and the
published bundle."""
