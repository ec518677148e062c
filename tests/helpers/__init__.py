"""Test helpers shared by the test modules (importable as `helpers`: pyproject's pytest
`pythonpath` puts tests/ on sys.path). Each submodule imports only what it needs, so a test of
the analysis layer never imports torch through them.

- `helpers.ports`: a free local TCP port;
- `helpers.distributed`: real multi-process gloo runs and float32 reduction tolerances;
- `helpers.shards`: small real shard sets for the data tests;
- `helpers.grids`: tiny sweep grids (and the sweep driver script of the kill test);
- `helpers.notebooks`: the analysis notebooks executed with papermill in this interpreter;
- `helpers.postgres`: a private PostgreSQL server on 127.0.0.1 (tests and benchmarks);
- `helpers.clusters`: simulated multi-node Ray clusters for the node-loss tests, in a process
  of their own and torn down node by node (never `ray stop --force`).
"""
