"""Layer 5, trained models: their files (``files``: the EMA network and V, rebuilt for sampling and the report)
and their samples drawn by every process together (``samples``)."""
