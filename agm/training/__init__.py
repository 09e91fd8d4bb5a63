"""Layers 3 and 4, training. Lower (3): processes (``distributed``), training-state files (``checkpoints``) and
the state folder of a run identity (``run_state``). Upper (4): the per-sample weightings, the trainers (one step
each), the loop (``loop``), how a run executes (``execution``: compile, channels_last, backends) and speed
measurements (``throughput``, ``peak_flops``)."""
