"""The provider kinds vecpipe ships, one module each (registered in providers/registry.py).

A kind's module holds its config model and its `KIND` entry (providers/kind.py); it imports
its implementation, and whatever SDK that needs, only when a provider is opened, so that
validating a config stays cheap.
"""
