"""Built-in formats for artists' tools: Maya, Unreal (curves and Live Link Face), Blender."""
