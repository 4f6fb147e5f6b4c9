//! Cold diffusion's samplers (Bansal et al. 2022, Algorithms 1 and 2; seed 002 "Cold Diffusion")
//! over a restoration network R(x_t, t) ≈ x₀ (a `Denoiser` whose time input is the level t) and a
//! deterministic degradation D (`rediffuse_core::degradation`).

use crate::continuous::SampleStats;
use crate::error::{Result, SampleError};
use candle_core::Tensor;
use rediffuse_core::degradation::{degrade_all, Degradation};
use rediffuse_core::Denoiser;
use serde::{Deserialize, Serialize};

/// Which update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColdUpdate {
    /// Algorithm 1: x_{t−1} = D(R(x_t, t), t − 1).
    Naive,
    /// Algorithm 2: x_{t−1} = x_t − D(x̂₀, t) + D(x̂₀, t − 1), x̂₀ = R(x_t, t) (exact for linear
    /// degradations when R is exact; robust to R's errors).
    Improved,
}

/// Run levels `from`, `from` − 1, …, 1 (of `total`) from `x`, a degraded image at level `from`
/// (generation: `from = total`; restoration of partly degraded images: less), down to level 0.
pub fn cold_sample(
    restorer: &dyn Denoiser,
    degradation: &Degradation,
    x: &Tensor,
    from: usize,
    total: usize,
    update: ColdUpdate,
) -> Result<(Tensor, SampleStats)> {
    if total == 0 || from == 0 || from > total {
        return Err(SampleError::invalid("levels", format!("need 1 <= from ({from}) <= total ({total})")));
    }
    let b = x.dim(0)?;
    let mut x = x.clone();
    for t in (1..=from).rev() {
        let time = Tensor::from_vec(vec![t as f32; b], b, x.device())?;
        let x0 = restorer.forward(&x, &time)?;
        if x0.dims() != x.dims() {
            return Err(SampleError::Shape(format!(
                "restoration output {:?} for input {:?}",
                x0.dims(),
                x.dims()
            )));
        }
        x =
            match update {
                ColdUpdate::Naive => degrade_all(degradation, &x0, t - 1, total)?,
                ColdUpdate::Improved => x
                    .sub(&degrade_all(degradation, &x0, t, total)?)?
                    .add(&degrade_all(degradation, &x0, t - 1, total)?)?,
            };
    }
    Ok((x, SampleStats { nfe: from, steps: from, rejected_steps: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rediffuse_core::Prediction;

    /// The exact restoration of one known image: R(x_t, t) = x₀ whatever x_t.
    struct Oracle(Tensor);
    impl Denoiser for Oracle {
        fn prediction(&self) -> Prediction {
            Prediction::Sample
        }
        fn forward(&self, _x: &Tensor, _t: &Tensor) -> rediffuse_core::Result<Tensor> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn improved_sampler_recovers_x0_exactly_with_an_exact_restorer() {
        let dev = Device::Cpu;
        let x0 = Tensor::randn(0f32, 0.5, (3, 2, 6, 6), &dev).unwrap();
        for d in [Degradation::Blur { size: 2.0 }, Degradation::Mask { seed: 5 }, Degradation::Pixelate] {
            let total = 10;
            let xt = degrade_all(&d, &x0, total, total).unwrap();
            for update in [ColdUpdate::Improved, ColdUpdate::Naive] {
                let (out, st) = cold_sample(&Oracle(x0.clone()), &d, &xt, total, total, update).unwrap();
                assert_eq!(st.nfe, total);
                let err = out.sub(&x0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(err < 1e-5, "{d:?} {update:?}: {err}");
            }
            // from a perturbed start the improved update still telescopes to x₀ + (x_T − D(x₀, T))
            let bump = Tensor::full(0.1f32, x0.shape(), &dev).unwrap();
            let (out, _) = cold_sample(
                &Oracle(x0.clone()),
                &d,
                &xt.add(&bump).unwrap(),
                total,
                total,
                ColdUpdate::Improved,
            )
            .unwrap();
            let err = out
                .sub(&x0.add(&bump).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(err < 1e-5, "{d:?}: {err}");
        }
        // restoration from a middle level
        let mid = degrade_all(&Degradation::Pixelate, &x0, 4, 10).unwrap();
        let (back, st) =
            cold_sample(&Oracle(x0.clone()), &Degradation::Pixelate, &mid, 4, 10, ColdUpdate::Improved)
                .unwrap();
        assert_eq!(st.nfe, 4);
        assert!(back.sub(&x0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-5);
        assert!(
            cold_sample(&Oracle(x0.clone()), &Degradation::Pixelate, &x0, 0, 0, ColdUpdate::Naive).is_err()
        );
        assert!(
            cold_sample(&Oracle(x0.clone()), &Degradation::Pixelate, &x0, 11, 10, ColdUpdate::Naive).is_err()
        );
    }
}
