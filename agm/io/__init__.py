"""Layer 1, files: atomic writes (``atomic``), image sets (``data``), image grids (``image_grid``) and content
hashes and import closures (``provenance``). Imports only agm.config."""
