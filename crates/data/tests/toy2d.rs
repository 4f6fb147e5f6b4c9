//! Toy 2-D sets: determinism, normalisation and the geometry of each set.

use candle_core::Device;
use rediffuse_data::toy2d::{Toy2d, CIRCLES_FACTOR, CIRCLES_NOISE, EIGHT_GAUSSIANS_STD_RATIO};
use rediffuse_data::DataError;

fn moments(p: &[[f64; 2]]) -> ([f64; 2], f64) {
    let n = p.len() as f64;
    let m = [p.iter().map(|v| v[0]).sum::<f64>() / n, p.iter().map(|v| v[1]).sum::<f64>() / n];
    let sq = p.iter().map(|v| v[0] * v[0] + v[1] * v[1]).sum::<f64>() / n;
    (m, sq)
}

#[test]
fn deterministic_prefix_stable_and_seed_dependent() {
    for toy in Toy2d::ALL {
        let a = toy.sample(500, 3);
        assert_eq!(a, toy.sample(500, 3), "{toy}");
        assert_eq!(&a[..200], &toy.sample(200, 3)[..], "{toy}: prefix");
        let b = toy.sample(500, 4);
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(differing > 450, "{toy}: only {differing} points differ between seeds");
    }
}

#[test]
fn normalised_to_zero_mean_and_unit_average_variance() {
    // E|x|^2 = 2 exactly; with n = 40000 the sample moments are within a few SE.
    for toy in Toy2d::ALL {
        let p = toy.sample(40_000, 11);
        let (m, sq) = moments(&p);
        assert!(m[0].abs() < 0.03 && m[1].abs() < 0.03, "{toy}: mean {m:?}");
        assert!((sq - 2.0).abs() < 0.05, "{toy}: E|x|^2 = {sq}");
    }
}

#[test]
fn eight_gaussians_near_centres() {
    let toy = Toy2d::EightGaussians;
    let (_, s) = toy.normalisation();
    let radius = 1.0 / s;
    let sd = EIGHT_GAUSSIANS_STD_RATIO / s;
    assert!((radius - 2f64.sqrt()).abs() < 1e-3 && (sd - 0.02).abs() < 1e-4, "r={radius} sd={sd}");
    let p = toy.sample(8000, 5);
    let mut counts = [0usize; 8];
    let mut sq_dev = 0.0;
    for v in &p {
        let k = ((v[1].atan2(v[0]) / (std::f64::consts::PI / 4.0)).round() as i64).rem_euclid(8) as usize;
        let a = k as f64 * std::f64::consts::PI / 4.0;
        let (dx, dy) = (v[0] - radius * a.cos(), v[1] - radius * a.sin());
        assert!((dx * dx + dy * dy).sqrt() < 6.0 * sd, "point {v:?} far from centre {k}");
        sq_dev += dx * dx + dy * dy;
        counts[k] += 1;
    }
    // Per-axis std of the modes.
    let sd_hat = (sq_dev / (2.0 * p.len() as f64)).sqrt();
    assert!((sd_hat / sd - 1.0).abs() < 0.05, "sd_hat {sd_hat} vs {sd}");
    // Equal mode weights: 1000 ± 3·sqrt(1000·7/8).
    assert!(counts.iter().all(|&c| (c as f64 - 1000.0).abs() < 90.0), "{counts:?}");
}

#[test]
fn circles_have_two_radii() {
    let toy = Toy2d::Circles;
    let (_, s) = toy.normalisation();
    let (r_out, r_in) = (1.0 / s, CIRCLES_FACTOR / s);
    let split = (r_out + r_in) / 2.0;
    let p = toy.sample(20_000, 9);
    let (mut outer, mut inner): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for v in &p {
        let r = v[0].hypot(v[1]);
        if r > split {
            outer.push(r)
        } else {
            inner.push(r)
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // Radial mean of a noisy circle is r + sd²/(2r) to first order.
    let sd = CIRCLES_NOISE / s;
    assert!((mean(&outer) - (r_out + sd * sd / (2.0 * r_out))).abs() < 0.01, "{} vs {r_out}", mean(&outer));
    assert!((mean(&inner) - (r_in + sd * sd / (2.0 * r_in))).abs() < 0.01, "{} vs {r_in}", mean(&inner));
    let frac = outer.len() as f64 / p.len() as f64;
    assert!((frac - 0.5).abs() < 0.02, "outer fraction {frac}");
}

#[test]
fn checkerboard_occupies_alternate_squares() {
    let toy = Toy2d::Checkerboard;
    let (_, s) = toy.normalisation();
    assert!((s - 2.0 / 3f64.sqrt()).abs() < 1e-12);
    let p = toy.sample(20_000, 1);
    let mut cells = [[0usize; 4]; 4];
    for v in &p {
        let (x, y) = (v[0] * s, v[1] * s); // back to [-2, 2]²
        assert!((-2.0..2.0).contains(&x) && (-2.0..2.0).contains(&y), "{x} {y}");
        let (i, j) = ((x + 2.0).floor() as usize, (y + 2.0).floor() as usize);
        cells[i][j] += 1;
    }
    for (i, col) in cells.iter().enumerate() {
        for (j, &c) in col.iter().enumerate() {
            if (i + j) % 2 == 0 {
                // 2500 expected per occupied square
                assert!((c as f64 - 2500.0).abs() < 200.0, "cell ({i},{j}) has {c}");
            } else {
                assert_eq!(c, 0, "cell ({i},{j}) should be empty");
            }
        }
    }
}

#[test]
fn moons_lie_on_two_half_circles() {
    let toy = Toy2d::Moons;
    let (mean, s) = toy.normalisation();
    let p = toy.sample(5000, 2);
    for v in &p {
        let (x, y) = (v[0] * s + mean[0], v[1] * s + mean[1]);
        let d_outer = (x.hypot(y) - 1.0).abs() + if y < -0.3 { 1.0 } else { 0.0 };
        let d_inner = ((x - 1.0).hypot(y - 0.5) - 1.0).abs() + if y > 0.8 { 1.0 } else { 0.0 };
        assert!(d_outer.min(d_inner) < 0.3, "({x}, {y}) off both moons");
    }
}

#[test]
fn swiss_roll_follows_spiral() {
    // Raw radius |(t cos t, t sin t)| = t ∈ [1.5π, 4.5π]; with N(0,1) noise the radius stays within ±5.
    let toy = Toy2d::SwissRoll;
    let (mean, s) = toy.normalisation();
    for v in toy.sample(5000, 8) {
        let r = (v[0] * s + mean[0]).hypot(v[1] * s + mean[1]);
        assert!(r > 1.5 * std::f64::consts::PI - 5.0 && r < 4.5 * std::f64::consts::PI + 5.0, "r={r}");
    }
}

#[test]
fn names_and_serde() {
    assert_eq!(Toy2d::from_name("moons").unwrap(), Toy2d::Moons);
    assert_eq!(Toy2d::from_name("swissroll").unwrap(), Toy2d::SwissRoll);
    assert_eq!(Toy2d::from_name("Swiss-Roll").unwrap(), Toy2d::SwissRoll);
    assert_eq!(Toy2d::from_name("8gaussians").unwrap(), Toy2d::EightGaussians);
    assert_eq!("checkerboard".parse::<Toy2d>().unwrap(), Toy2d::Checkerboard);
    match Toy2d::from_name("spirals") {
        Err(e @ DataError::UnknownToy { .. }) => {
            let msg = e.to_string();
            for t in Toy2d::ALL {
                assert!(msg.contains(t.name()), "{msg}");
            }
        }
        other => panic!("{other:?}"),
    }
    for t in Toy2d::ALL {
        let js = serde_json::to_string(&t).unwrap();
        assert_eq!(js, format!("\"{}\"", t.name()));
        assert_eq!(serde_json::from_str::<Toy2d>(&js).unwrap(), t);
        assert_eq!(Toy2d::from_name(&t.to_string()).unwrap(), t);
    }
    assert_eq!(serde_json::from_str::<Toy2d>("\"swissroll\"").unwrap(), Toy2d::SwissRoll);
}

#[test]
fn tensor_matches_vec() {
    let t = Toy2d::Moons.sample_tensor(7, 1, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[7, 2]);
    let v = Toy2d::Moons.sample(7, 1);
    let rows = t.to_vec2::<f32>().unwrap();
    for (r, p) in rows.iter().zip(&v) {
        assert_eq!(r, &vec![p[0] as f32, p[1] as f32]);
    }
}
