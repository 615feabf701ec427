"""Previews of rig sequences: a 2D face drawn from the MetaHuman controls, videos, GIFs, curve plots."""
