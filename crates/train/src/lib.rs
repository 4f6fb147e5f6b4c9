//! Training loop, optimiser, EMA, checkpoints.
