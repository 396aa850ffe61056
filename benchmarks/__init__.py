"""pytest-benchmark suite: train/predict step micro-benchmarks and harness overhead (not in testpaths)."""
