"""Torch implementations of plugin-declared networks (guidance encoders with a frozen encoder inside).

A plugin module declares a component torch-free (name, Config, description) so that listing components
never imports torch; the declaration's ``implementation = "medtalk.backends.MODULE:Class"`` names the
``nn.Module`` subclass here, which ``medtalk.build`` constructs.
"""
