//! PNG outputs: files exist, decode, have the documented size, and show data and text.

use rediffuse_eval::plot::{
    line_plot_png, scatter_png, scatter_png_in, PlotBounds, LINE_PLOT_SIZE, SCATTER_SIZE,
};
use rediffuse_eval::EvalError;
use std::path::PathBuf;

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-plot-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn blue_pixels(img: &image::RgbImage) -> usize {
    img.pixels().filter(|p| p.0[2] as i32 > p.0[0] as i32 + 60).count()
}

fn dark_pixels_in_rows(img: &image::RgbImage, rows: std::ops::Range<u32>) -> usize {
    rows.flat_map(|y| (0..img.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
        .count()
}

#[test]
fn scatter_png_writes_decodable_image_with_points_and_title() {
    let dir = out_dir("scatter");
    let reference: Vec<[f64; 2]> = (0..400)
        .map(|i| {
            let t = i as f64 / 400.0 * std::f64::consts::TAU;
            [t.cos(), t.sin()]
        })
        .collect();
    let points: Vec<[f64; 2]> = (0..200).map(|i| [0.2 + 0.001 * i as f64, -0.1]).collect();
    let p = dir.join("s.png");
    scatter_png(&p, &points, Some(&reference), "samples").unwrap();
    let img = image::open(&p).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), SCATTER_SIZE);
    assert!(blue_pixels(&img) > 50, "sample points should be drawn");
    let grey = img.pixels().filter(|p| p.0[0] == p.0[2] && (120..240).contains(&p.0[0])).count();
    assert!(grey > 200, "reference points should be drawn ({grey})");
    // The title is rendered with the embedded font: dark pixels in the caption band.
    assert!(dark_pixels_in_rows(&img, 0..40) > 20, "title text missing");

    // Without points there is no blue; a longer title puts more ink in the caption band.
    let q = dir.join("empty.png");
    scatter_png(&q, &[], Some(&reference), "a").unwrap();
    let empty = image::open(&q).unwrap().to_rgb8();
    assert_eq!(blue_pixels(&empty), 0);
    let r = dir.join("long.png");
    scatter_png(&r, &[], Some(&reference), "a much longer title here").unwrap();
    let long = image::open(&r).unwrap().to_rgb8();
    assert!(dark_pixels_in_rows(&long, 0..40) > dark_pixels_in_rows(&empty, 0..40) + 50);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scatter_with_fixed_bounds_and_bad_points() {
    let dir = out_dir("fixed");
    let p = dir.join("f.png");
    let pts = [[0.0, 0.0], [f64::NAN, 1.0], [50.0, 50.0]];
    let bounds = PlotBounds { x: (-2.0, 2.0), y: (-2.0, 2.0) };
    scatter_png_in(&p, &pts, None, "fixed", bounds).unwrap();
    assert_eq!(image::open(&p).unwrap().to_rgb8().dimensions(), SCATTER_SIZE);
    let bad = PlotBounds { x: (1.0, 1.0), y: (0.0, f64::NAN) };
    assert!(matches!(
        scatter_png_in(dir.join("g.png"), &pts, None, "t", bad),
        Err(EvalError::InvalidParameter { .. })
    ));
    assert!(!dir.join("g.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn line_plot_linear_and_log() {
    let dir = out_dir("line");
    let loss: Vec<(f64, f64)> = (1..=200).map(|i| (i as f64, 1.0 / i as f64)).collect();
    let other: Vec<(f64, f64)> = (1..=200).map(|i| (i as f64, 0.5 / (i as f64).sqrt())).collect();
    let series = vec![("train".to_string(), loss), ("eval".to_string(), other)];
    for log_y in [false, true] {
        let p = dir.join(format!("l{log_y}.png"));
        line_plot_png(&p, &series, "loss", "step", "loss", log_y).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), LINE_PLOT_SIZE);
        let blue = blue_pixels(&img);
        let orange = img.pixels().filter(|p| p.0[0] > 200 && p.0[2] < 80 && p.0[1] > 90).count();
        assert!(blue > 100 && orange > 100, "log_y={log_y}: blue {blue}, orange {orange}");
    }
    let nonpositive = vec![("x".to_string(), vec![(0.0, 0.0), (1.0, -1.0)])];
    assert!(matches!(
        line_plot_png(dir.join("bad.png"), &nonpositive, "t", "x", "y", true),
        Err(EvalError::InvalidParameter { .. })
    ));
    line_plot_png(dir.join("lin.png"), &nonpositive, "t", "x", "y", false).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
