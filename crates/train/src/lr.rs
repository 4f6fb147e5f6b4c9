//! Learning-rate schedule and gradient clipping.

use crate::error::Result;
use crate::kernels::sum_squares;
use candle_core::backprop::GradStore;
use candle_core::Var;

/// Linear warm-up: the k-th step (k = 1, 2, …) uses lr·min(1, k/W); W = 0 means no warm-up.
pub fn warmup_lr(base_lr: f64, warmup_steps: usize, k: u64) -> f64 {
    if warmup_steps == 0 || k >= warmup_steps as u64 {
        base_lr
    } else {
        base_lr * k as f64 / warmup_steps as f64
    }
}

/// Global L2 norm ‖g‖ = √(Σ_params Σ g²) of the gradients of `params` present in `grads`.
pub fn global_grad_norm(grads: &GradStore, params: &[(String, Var)]) -> Result<f64> {
    let mut total = 0.0;
    for (_, p) in params {
        if let Some(g) = grads.get(p.as_tensor()) {
            total += sum_squares(g)?;
        }
    }
    Ok(total.sqrt())
}

/// Factor that rescales gradients of norm `norm` to at most `max_norm`
/// (PyTorch's `clip_grad_norm_`: min(1, max_norm/(norm + 1e-6))).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_values() {
        assert_eq!(warmup_lr(1e-3, 4, 1), 2.5e-4);
        assert_eq!(warmup_lr(1e-3, 4, 2), 5e-4);
        assert_eq!(warmup_lr(1e-3, 4, 4), 1e-3);
        assert_eq!(warmup_lr(1e-3, 4, 100), 1e-3);
        assert_eq!(warmup_lr(1e-3, 0, 1), 1e-3);
    }

    #[test]
    fn clipping_norm() {
        let dev = Device::Cpu;
        let a = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let b = Var::new(&[[3.0f32], [4.0]], &dev).unwrap();
        let unused = Var::new(&[9.0f32], &dev).unwrap();
        // loss = Σ a² + Σ b²  ->  g = 2a, 2b ; ‖g‖ = 2·√30
        let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let params = vec![("a".into(), a), ("b".into(), b), ("u".into(), unused)];
        let n = global_grad_norm(&grads, &params).unwrap();
        assert!((n - 2.0 * 30f64.sqrt()).abs() < 1e-9, "{n}");
        let s = clip_scale(n, 1.0);
        assert!((s * n - 1.0).abs() < 1e-6);
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
    }
}
