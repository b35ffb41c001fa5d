"""Stage 1: the `.txt` metadata of each photo, parsed into the image catalogue."""
