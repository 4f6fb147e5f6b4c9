//! DDPM/ADM-style U-Net.
