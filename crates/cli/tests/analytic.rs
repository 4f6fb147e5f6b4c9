//! `rediffuse sample --analytic …`: exact denoisers through the CLI.

mod common;
use common::*;
use rediffuse_data::npy::{read_npy, write_npy, NpyDtype};

fn moments(path: &std::path::Path) -> ([f64; 2], [[f64; 2]; 2]) {
    let a = read_npy(path).unwrap();
    let n = a.shape[0];
    let mut m = [0.0; 2];
    for r in a.data.chunks(2) {
        m[0] += r[0] as f64 / n as f64;
        m[1] += r[1] as f64 / n as f64;
    }
    let mut c = [[0.0; 2]; 2];
    for r in a.data.chunks(2) {
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] += (r[i] as f64 - m[i]) * (r[j] as f64 - m[j]) / (n - 1) as f64;
            }
        }
    }
    (m, c)
}

#[test]
fn gaussian_denoiser_ddpm_recovers_moments_and_init_noise_is_deterministic() {
    let d = tmp("analytic");
    // data N(μ, Σ) written as .npy
    let n = 4000;
    let mut noise = rediffuse_core::NoiseSource::new(11, 0, n);
    let z = noise.randn_vec(&[2]);
    let mut data = Vec::with_capacity(2 * n);
    for r in z.chunks(2) {
        // Σ = L Lᵀ with L = [[1, 0], [0.6, 0.5]] → Σ = [[1, .6], [.6, .61]]
        data.push(1.0 + r[0]);
        data.push(-0.5 + 0.6 * r[0] + 0.5 * r[1]);
    }
    write_npy(d.join("data.npy"), &[n, 2], &data, NpyDtype::F32).unwrap();
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "gaussian:data.npy",
            "--sampler",
            "ddpm",
            "--variance",
            "beta",
            "--n",
            "4000",
            "--seed",
            "5",
            "--out",
            "x.npy",
            "--quiet",
        ],
    );
    let (m, c) = moments(&d.join("x.npy"));
    let (dm, dc) = moments(&d.join("data.npy"));
    for i in 0..2 {
        assert!((m[i] - dm[i]).abs() < 0.06, "mean {m:?} vs {dm:?}");
        for j in 0..2 {
            assert!((c[i][j] - dc[i][j]).abs() < 0.05 * dc[0][0], "cov {c:?} vs {dc:?}");
        }
    }
    // UniPC through the CLI (default bh2 order 2; bh1 order 3; predictor only) at 20 NFE
    for (k, extra) in [vec![], vec!["--order", "3", "--unipc-variant", "bh1"], vec!["--no-corrector"]]
        .into_iter()
        .enumerate()
    {
        let out = format!("u{k}.npy");
        let mut a = vec![
            "sample",
            "--analytic",
            "gaussian:data.npy",
            "--sampler",
            "unipc",
            "--steps",
            "20",
            "--n",
            "4000",
            "--seed",
            "6",
            "--out",
            &out,
            "--quiet",
        ];
        a.extend(extra);
        ok(&d, &a);
        let (m, c) = moments(&d.join(&out));
        for i in 0..2 {
            assert!((m[i] - dm[i]).abs() < 0.06, "unipc {k}: mean {m:?} vs {dm:?}");
            for j in 0..2 {
                assert!((c[i][j] - dc[i][j]).abs() < 0.05 * dc[0][0], "unipc {k}: cov {c:?} vs {dc:?}");
            }
        }
    }
    fails(
        &d,
        &[
            "sample",
            "--analytic",
            "gaussian:data.npy",
            "--sampler",
            "unipc",
            "--order",
            "4",
            "--n",
            "4",
            "--out",
            "bad.npy",
        ],
        "--order",
    );
    // --init-noise makes DDIM (η = 0) reproducible and independent of the seed
    let x_t: Vec<f32> = rediffuse_core::NoiseSource::new(1, 0, 8).randn_vec(&[2]);
    write_npy(d.join("xT.npy"), &[8, 2], &x_t, NpyDtype::F64).unwrap();
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "gaussian:data.npy",
            "--sampler",
            "ddim",
            "--steps",
            "20",
            "--n",
            "8",
            "--seed",
            "1",
            "--init-noise",
            "xT.npy",
            "--out",
            "a.npy",
            "--quiet",
        ],
    );
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "gaussian:data.npy",
            "--sampler",
            "ddim",
            "--steps",
            "20",
            "--n",
            "8",
            "--seed",
            "2",
            "--init-noise",
            "xT.npy",
            "--out",
            "b.npy",
            "--quiet",
            "--batch-size",
            "3",
        ],
    );
    assert_eq!(read_npy(d.join("a.npy")).unwrap().data, read_npy(d.join("b.npy")).unwrap().data);
}

#[test]
fn gmm_and_empirical_denoisers_sample() {
    let d = tmp("gmm");
    std::fs::write(d.join("spec.json"), r#"{"weights":[0.3,0.7],"means":[[-2,0],[2,0]],"stds":[0.2,0.2]}"#)
        .unwrap();
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "gmm:spec.json",
            "--sampler",
            "ddim",
            "--steps",
            "100",
            "--n",
            "1000",
            "--seed",
            "3",
            "--out",
            "g.npy",
            "--png",
            "g.png",
            "--quiet",
        ],
    );
    let g = read_npy(d.join("g.npy")).unwrap();
    let left = g.data.chunks(2).filter(|r| r[0] < 0.0).count() as f64 / 1000.0;
    assert!((left - 0.3).abs() < 0.05, "left fraction {left}");
    assert!(d.join("g.png").exists());
    // the empirical denoiser memorises: DDIM samples land on training points
    ok(&d, &["data", "export", "moons", "--n", "5", "--seed", "0", "--out", "five.npy"]);
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "empirical:five.npy",
            "--sampler",
            "ddim",
            "--steps",
            "100",
            "--n",
            "50",
            "--out",
            "e.npy",
            "--quiet",
        ],
    );
    let train = read_npy(d.join("five.npy")).unwrap();
    let e = read_npy(d.join("e.npy")).unwrap();
    for r in e.data.chunks(2) {
        let best = train
            .data
            .chunks(2)
            .map(|t| ((r[0] - t[0]).powi(2) + (r[1] - t[1]).powi(2)).sqrt())
            .fold(f32::INFINITY, f32::min);
        assert!(best < 1e-2, "sample {r:?} is {best} from the nearest training point");
    }
}
