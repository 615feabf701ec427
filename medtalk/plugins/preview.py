"""The `medtalk preview` command: a rendered 2D face driven by the rig controls."""
