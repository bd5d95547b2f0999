"""vecpipe benchmarks: `python -m bench`."""
