"""What a run leaves on disk and how it is read back: the checkpoint format (below the models and
data modules that write it), the run's records, and checkpoints loaded as models (above them)."""
