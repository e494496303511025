"""What a training run does around ``Trainer.fit``: its stages and records, resuming, sharing the
machine in a sweep, the precision ``auto`` picks, presets' checks, and the sweep's callbacks."""
