"""Built-in metrics (paper eqs. 15-18) and the medtalk eval command."""
