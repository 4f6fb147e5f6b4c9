//! Image data sets.
