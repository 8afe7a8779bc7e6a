"""Growth: TINY statistics, the pure math, and the engine that decides when, where, how much."""
