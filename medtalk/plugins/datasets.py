"""Built-in training datasets."""
