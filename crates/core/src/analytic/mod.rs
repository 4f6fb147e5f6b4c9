//! Analytic denoisers (exact Gaussian, isotropic Gaussian mixture, empirical data set).
