"""strfsolver's benchmarks: each script prints ratios measured side by side in one run."""
