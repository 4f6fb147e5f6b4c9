//! Continuous-time samplers (SDE, probability-flow ODE, DPM-Solver, EDM).
