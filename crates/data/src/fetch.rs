//! Downloading standard data sets with SHA-256 checks.
