"""Embedding providers: local sentence-transformers, OpenAI-compatible gateways, the chain."""
