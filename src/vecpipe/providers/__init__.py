"""Embedding providers: the contract (base), the kinds and their registry, the chain, the manager.

Kinds: local sentence-transformers (local.py), OpenAI-compatible gateways (openai_compat.py),
each declared in providers/kinds/ and listed once in registry.py.
"""
