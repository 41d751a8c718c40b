"""Helpers the tests share: dense NumPy references, the op test matrix, a NumPy interpreter of the DAG."""
