"""Fixtures for tests, benchmarks, demos and notebooks: synthetic sweeps with known scaling laws
(`synthetic`). Unlike `vlscale.analysis` this package may build platform specs (`Cell`), since a
synthetic sweep is logged through the same tracking calls a real sweep uses."""
