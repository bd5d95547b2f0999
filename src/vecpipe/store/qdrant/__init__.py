"""The VectorStore on a Qdrant server or cluster, through qdrant-client (store.py)."""

from vecpipe.store.qdrant.store import QdrantStore

__all__ = ["QdrantStore"]
