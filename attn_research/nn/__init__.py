"""Flax NNX modules that own parameters and call the pure kernels."""
