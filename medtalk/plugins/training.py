"""Built-in training stages and the medtalk train command."""
