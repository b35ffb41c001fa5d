"""Stage 3: where the buildings stand: targets, splits and geographic neighbour graphs."""
