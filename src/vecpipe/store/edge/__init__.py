"""The VectorStore on Qdrant Edge, embedded: one shard per embedding space (store.py)."""

from vecpipe.store.edge.store import EdgeStore

__all__ = ["EdgeStore"]
