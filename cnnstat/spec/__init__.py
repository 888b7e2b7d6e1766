"""The spec language: YAML with locations, safe expressions, and the graph builder."""
