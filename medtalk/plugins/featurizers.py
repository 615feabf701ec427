"""Built-in audio featurizers that need no model."""
