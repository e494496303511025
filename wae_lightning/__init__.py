"""wae_lightning: train, compare and understand AE, VAE and WAE models with Lightning and Hydra."""
