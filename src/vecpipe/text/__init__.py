"""Text utilities every layer may use: chunking to a model's limit and content hashing.

A leaf package: it imports nothing else of vecpipe.
"""
