//! Continuous-time SDE math (VE, VP, sub-VP) and EDM preconditioning.
