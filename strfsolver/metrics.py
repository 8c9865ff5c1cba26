"""Exact, vectorized, NaN-aware metrics (CONVENTIONS.md §2)."""
