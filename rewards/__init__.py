"""NAVSIM-style PDM scoring and collision terms: one pure, vectorized scorer used by envs, miner and agents."""
