"""Benchmarks that print ratios against a baseline measured in the same run:
``python -m wae_lightning.bench`` (training speed), ``wae_lightning.bench.folder`` (image folders),
``wae_lightning.bench.checkpoint`` (checkpoint cost)."""
