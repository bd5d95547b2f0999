"""Vector stores: Qdrant Edge embedded (edge.py) and a Qdrant server (qdrant.py)."""
