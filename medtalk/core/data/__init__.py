"""Training data: datasets, batching with masks, the on-disk feature cache."""
