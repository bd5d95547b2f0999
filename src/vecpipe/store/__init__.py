"""Vector stores. The seam the core sees is `base.VectorStore`:

    query.py       SearchQuery: what a search asks (tenant, vector, conditions, limit, offset)
    conditions.py  the one condition tree, and the system conditions built from it
    writes.py      WriteBatch / WriteResult: what `write` takes and answers
    guard.py       GuardedStore: free-space floor and honest readiness, around any backend

Backends: edge/ (Qdrant Edge, embedded; the default) and qdrant/ (a Qdrant server through
qdrant-client). Both share the point layout (point_ids.py, payload.py), one-hit-per-record
search (grouping.py) and the version-race protocol behind `write` (versioned.py, over four
primitives each implements); each compiles condition trees in its own filters.py.
"""
