"""Built-in plugins. Each module registers itself exactly as a third-party plugin would."""
