//! Interpolation between two latents x_T (DDIM, Song et al. 2021a §5.3: with a deterministic
//! sampler the generative map is x_T ↦ x₀, so walking between two x_T along the sphere the Gaussian
//! concentrates on gives a smooth path between two samples).

use crate::error::{Result, SampleError};
use candle_core::Tensor;

/// Spherical linear interpolation of two latents `a`, `b` (same shape `[…]`) at `alphas`:
/// slerp(a, b; α) = sin((1 − α)θ)/sin θ · a + sin(αθ)/sin θ · b, θ = ∠(a, b), stacked as
/// `[len(alphas), …]` (f32). α = 0 gives `a` and α = 1 gives `b`, bit for bit; (anti)parallel
/// latents (sin θ ≈ 0) fall back to linear interpolation.
pub fn slerp(a: &Tensor, b: &Tensor, alphas: &[f64]) -> Result<Tensor> {
    if a.dims() != b.dims() {
        return Err(SampleError::invalid(
            "latents",
            format!("shapes {:?} and {:?} differ", a.dims(), b.dims()),
        ));
    }
    if alphas.iter().any(|a| !a.is_finite()) {
        return Err(SampleError::invalid("alphas", "must be finite"));
    }
    let va: Vec<f64> = a.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let vb: Vec<f64> = b.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (na, nb) = (norm(&va), norm(&vb));
    if na == 0.0 || nb == 0.0 {
        return Err(SampleError::invalid("latents", "a latent of norm 0 has no direction"));
    }
    let cos = (va.iter().zip(&vb).map(|(x, y)| x * y).sum::<f64>() / (na * nb)).clamp(-1.0, 1.0);
    let theta = cos.acos();
    let mut rows = Vec::with_capacity(alphas.len());
    for &t in alphas {
        let (wa, wb) = if t == 0.0 {
            (1.0, 0.0)
        } else if t == 1.0 {
            (0.0, 1.0)
        } else if theta.sin().abs() < 1e-6 {
            (1.0 - t, t)
        } else {
            (((1.0 - t) * theta).sin() / theta.sin(), (t * theta).sin() / theta.sin())
        };
        let row: Vec<f32> = va.iter().zip(&vb).map(|(x, y)| (wa * x + wb * y) as f32).collect();
        rows.push(Tensor::from_vec(row, a.shape(), a.device())?.unsqueeze(0)?);
    }
    Ok(Tensor::cat(&rows, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn slerp_endpoints_and_the_great_circle() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[3f32, 0.0], &dev).unwrap();
        let b = Tensor::new(&[0f32, 3.0], &dev).unwrap();
        let out: Vec<Vec<f32>> = slerp(&a, &b, &[0.0, 0.5, 1.0, 1.0 / 3.0]).unwrap().to_vec2().unwrap();
        assert_eq!(out[0], vec![3.0, 0.0]);
        assert_eq!(out[2], vec![0.0, 3.0]);
        // on the circle of radius 3: at α the angle is απ/2
        for (row, t) in [(1, 0.5f64), (3, 1.0 / 3.0)] {
            let ang = t * std::f64::consts::FRAC_PI_2;
            assert!(
                (out[row][0] as f64 - 3.0 * ang.cos()).abs() < 1e-6
                    && (out[row][1] as f64 - 3.0 * ang.sin()).abs() < 1e-6
            );
        }
        // parallel latents: linear; errors
        let c = Tensor::new(&[6f32, 0.0], &dev).unwrap();
        let mid: Vec<Vec<f32>> = slerp(&a, &c, &[0.5]).unwrap().to_vec2().unwrap();
        assert!((mid[0][0] - 4.5).abs() < 1e-6);
        assert!(slerp(&a, &Tensor::new(&[1f32, 2.0, 3.0], &dev).unwrap(), &[0.5]).is_err());
        assert!(slerp(&a, &Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap(), &[0.5]).is_err());
        assert!(slerp(&a, &b, &[f64::NAN]).is_err());
    }
}
