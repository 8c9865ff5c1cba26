"""Datasets, padding and loaders that follow the data contract (CONVENTIONS.md §1)."""
