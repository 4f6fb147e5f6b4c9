//! Runtime CPU-feature dispatch for the element-wise loops, and vectorisable math.
//!
//! [`multiversion!`] compiles a plain-Rust loop body three times (AVX-512, AVX2+FMA,
//! baseline) and picks the best one at run time, so no `target-cpu=native` is needed.

/// Defines `fn $name(args) -> ret` whose body is compiled for AVX-512, AVX2+FMA and the
/// baseline target, dispatched at run time with `is_x86_feature_detected!`.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn inner($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
                #[target_feature(enable = "avx2,fma,bmi2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
                if $crate::ops::simd::has_avx512() {
                    // SAFETY: the CPU supports the enabled features (checked at run time).
                    return unsafe { v4($($arg),*) };
                }
                if $crate::ops::simd::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { v3($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("bmi2")
}

/// `e^x` for f32, branch-free so loops calling it vectorise: `x = n·ln2 + r` with
/// `n = round(x·log2 e)` (rounded by adding 1.5·2²³, whose low mantissa bits then hold
/// `n`), `e^r` by its degree-7 Taylor polynomial on |r| ≤ ln2/2, and `2^n` built from
/// the exponent bits. Relative error below 5e-7 on [-87, 88]; inputs are clamped there.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const SHIFTER: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor coefficients 1/k! (k = 0..7) in Horner form.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // t's bit pattern is 0x4B40_0000 + n; shifting by 23 drops the constant's bits.
    let bits = t.to_bits().wrapping_add(127) << 23;
    p * f32::from_bits(bits)
}

/// Logistic sigmoid `1 / (1 + e^{-x})`.
#[inline(always)]
pub(crate) fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

multiversion! {
    /// Sum of a slice with 16 independent accumulators (vectorisable).
    pub(crate) fn sum(x: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let chunks = x.chunks_exact(16);
        let rem = chunks.remainder();
        for c in chunks {
            for i in 0..16 {
                acc[i] += c[i];
            }
        }
        let mut s = acc.iter().sum::<f32>();
        for &v in rem {
            s += v;
        }
        s
    }
}

multiversion! {
    /// `dst[i] += src[i]`.
    pub(crate) fn add_assign(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((exp_f32(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    #[test]
    fn sum_matches_naive() {
        let x: Vec<f32> = (0..1037).map(|i| (i as f32 * 0.37).sin()).collect();
        let naive: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum(&x) as f64 - naive).abs() < 1e-3);
    }
}
