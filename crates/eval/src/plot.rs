//! PNG figures: 2-D scatter plots of samples over reference data, and line plots
//! (loss curves). Rendered with `plotters` into memory, encoded with `image`, and
//! written atomically. Text uses an embedded DejaVu Sans font (plotters' `ab_glyph`
//! backend), so no system fonts or fontconfig are needed.

use crate::error::{EvalError, Result};
use image::{ImageFormat, RgbImage};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// Pixel size (width, height) of [`scatter_png`] images.
pub const SCATTER_SIZE: (u32, u32) = (640, 640);
/// Pixel size (width, height) of [`line_plot_png`] images.
pub const LINE_PLOT_SIZE: (u32, u32) = (800, 500);
/// Colour of generated samples in scatter plots.
pub const SAMPLE_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Colour of reference data in scatter plots (drawn underneath, half transparent).
pub const REFERENCE_COLOR: RGBColor = RGBColor(150, 150, 150);
/// Line colours, cycled over series (the "tab10" palette).
pub const SERIES_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Register the embedded font as plotters' `"sans-serif"` family (idempotent).
/// Every function that draws text calls this first.
pub fn register_plot_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS).is_ok()) {
        Ok(())
    } else {
        Err(EvalError::Plot("the embedded DejaVu Sans font could not be parsed".into()))
    }
}

fn plot_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Plot(e.to_string())
}

/// Encode an RGB image as PNG and write it atomically.
pub fn save_png_atomic(path: impl AsRef<Path>, img: &RgbImage) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)?;
    rediffuse_data::npy::write_bytes_atomic(path, bytes.get_ref())?;
    Ok(())
}

/// Axis-aligned view `[x_min, x_max] × [y_min, y_max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotBounds {
    pub x: (f64, f64),
    pub y: (f64, f64),
}

impl PlotBounds {
    fn check(&self) -> Result<()> {
        for (name, (lo, hi)) in [("x", self.x), ("y", self.y)] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(EvalError::invalid(
                    "bounds",
                    format!("{name} range ({lo}, {hi}) is empty or not finite"),
                ));
            }
        }
        Ok(())
    }

    fn contains(&self, p: &[f64; 2]) -> bool {
        (self.x.0..=self.x.1).contains(&p[0]) && (self.y.0..=self.y.1).contains(&p[1])
    }

    /// A square view containing the reference data entirely and the central 99% of
    /// `points` on each axis (stray outliers do not squash the plot), with a 5% margin.
    /// Non-finite points are ignored; with no finite point the view is `[-1, 1]²`.
    pub fn auto(points: &[[f64; 2]], reference: Option<&[[f64; 2]]>) -> Self {
        let mut lo = [f64::INFINITY; 2];
        let mut hi = [f64::NEG_INFINITY; 2];
        let finite = |p: &&[f64; 2]| p[0].is_finite() && p[1].is_finite();
        for p in reference.unwrap_or(&[]).iter().filter(finite) {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let pts: Vec<&[f64; 2]> = points.iter().filter(finite).collect();
        if !pts.is_empty() {
            for k in 0..2 {
                let mut v: Vec<f64> = pts.iter().map(|p| p[k]).collect();
                v.sort_unstable_by(f64::total_cmp);
                let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
                let (a, b) = if v.len() >= 200 { (q(0.005), q(0.995)) } else { (v[0], v[v.len() - 1]) };
                lo[k] = lo[k].min(a);
                hi[k] = hi[k].max(b);
            }
        }
        if !(lo[0].is_finite() && lo[1].is_finite()) {
            return PlotBounds { x: (-1.0, 1.0), y: (-1.0, 1.0) };
        }
        let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-9) * 1.1;
        let cx = (lo[0] + hi[0]) / 2.0;
        let cy = (lo[1] + hi[1]) / 2.0;
        PlotBounds { x: (cx - span / 2.0, cx + span / 2.0), y: (cy - span / 2.0, cy + span / 2.0) }
    }
}

/// Scatter plot of 2-D `points` over faint `reference` data, in a square view that
/// includes both ([`PlotBounds::auto`]). Size [`SCATTER_SIZE`]. Points that are not finite
/// or fall outside the view are counted in the title.
pub fn scatter_png(
    path: impl AsRef<Path>,
    points: &[[f64; 2]],
    reference: Option<&[[f64; 2]]>,
    title: &str,
) -> Result<()> {
    scatter_png_in(path, points, reference, title, PlotBounds::auto(points, reference))
}

/// [`scatter_png`] with a fixed view, e.g. to compare a sequence of figures.
pub fn scatter_png_in(
    path: impl AsRef<Path>,
    points: &[[f64; 2]],
    reference: Option<&[[f64; 2]]>,
    title: &str,
    bounds: PlotBounds,
) -> Result<()> {
    let (img, _) = render_scatter(points, reference, title, bounds, &[])?;
    save_png_atomic(path, &img)
}

/// Render a scatter plot; also returns the pixel positions of the data coordinates `probes`.
fn render_scatter(
    points: &[[f64; 2]],
    reference: Option<&[[f64; 2]]>,
    title: &str,
    bounds: PlotBounds,
    probes: &[[f64; 2]],
) -> Result<(RgbImage, Vec<(i32, i32)>)> {
    bounds.check()?;
    register_plot_fonts()?;
    let non_finite = points.iter().filter(|p| !(p[0].is_finite() && p[1].is_finite())).count();
    let visible: Vec<&[f64; 2]> = points.iter().filter(|p| bounds.contains(p)).collect();
    let outside = points.len() - non_finite - visible.len();
    let mut caption = title.to_string();
    if non_finite > 0 {
        caption.push_str(&format!(" [{non_finite} non-finite]"));
    }
    if outside > 0 {
        caption.push_str(&format!(" [{outside} outside view]"));
    }
    let (w, h) = SCATTER_SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let mut probe_px = Vec::with_capacity(probes.len());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(44)
            .build_cartesian_2d(bounds.x.0..bounds.x.1, bounds.y.0..bounds.y.1)
            .map_err(plot_err)?;
        chart.configure_mesh().light_line_style(WHITE).draw().map_err(plot_err)?;
        if let Some(r) = reference {
            let style = REFERENCE_COLOR.mix(0.5).filled();
            chart
                .draw_series(
                    r.iter().filter(|p| bounds.contains(p)).map(|p| Circle::new((p[0], p[1]), 2, style)),
                )
                .map_err(plot_err)?;
        }
        let style = SAMPLE_COLOR.mix(0.7).filled();
        chart.draw_series(visible.iter().map(|p| Circle::new((p[0], p[1]), 2, style))).map_err(plot_err)?;
        probe_px.extend(probes.iter().map(|p| chart.backend_coord(&(p[0], p[1]))));
        root.present().map_err(plot_err)?;
    }
    let img = RgbImage::from_raw(w, h, buf).ok_or_else(|| EvalError::Plot("bitmap size mismatch".into()))?;
    Ok((img, probe_px))
}

/// Line plot of named `(x, y)` series, e.g. loss curves. With `log_y` the y axis is
/// logarithmic and points with `y <= 0` are left out; non-finite points are always left out.
/// Size [`LINE_PLOT_SIZE`]. Errors if no series has a plottable point.
pub fn line_plot_png(
    path: impl AsRef<Path>,
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
) -> Result<()> {
    let img = render_line_plot(series, title, x_label, y_label, log_y)?;
    save_png_atomic(path, &img)
}

fn render_line_plot(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
) -> Result<RgbImage> {
    register_plot_fonts()?;
    let kept: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            let ok = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
            (name.as_str(), pts.iter().filter(ok).copied().collect())
        })
        .collect();
    let all = || kept.iter().flat_map(|(_, p)| p.iter());
    if all().next().is_none() {
        return Err(EvalError::invalid(
            "series",
            if log_y {
                "no finite point with y > 0 to plot on a log axis"
            } else {
                "no finite point to plot"
            },
        ));
    }
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let (w, h) = LINE_PLOT_SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut builder = ChartBuilder::on(&root);
        builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(64);
        let labels = AxisLabels { x: x_label, y: y_label };
        if log_y {
            let (lo, hi) = if y1 > y0 { (y0 / 1.2, y1 * 1.2) } else { (y0 / 2.0, y1 * 2.0) };
            let mut chart = builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale()).map_err(plot_err)?;
            draw_lines(&mut chart, &kept, labels)?;
        } else {
            let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { y0.abs().max(1.0) * 0.5 };
            let mut chart = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(plot_err)?;
            draw_lines(&mut chart, &kept, labels)?;
        }
        root.present().map_err(plot_err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| EvalError::Plot("bitmap size mismatch".into()))
}

/// Short tick label: at most 4 significant digits, scientific notation for very small or large values.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

#[derive(Clone, Copy)]
struct AxisLabels<'a> {
    x: &'a str,
    y: &'a str,
}

fn draw_lines<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    series: &[(&str, Vec<(f64, f64)>)],
    labels: AxisLabels<'_>,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()
        .map_err(plot_err)?;
    let mut any_named = false;
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = SERIES_COLORS[k % SERIES_COLORS.len()];
        let drawn = chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?;
        if !name.is_empty() {
            any_named = true;
            drawn
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    if any_named {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_white(p: &image::Rgb<u8>) -> bool {
        p.0.iter().all(|&c| c > 250)
    }

    #[test]
    fn points_land_at_their_data_coordinates() {
        let bounds = PlotBounds { x: (-1.0, 1.0), y: (-1.0, 1.0) };
        let sample = [[0.53, 0.47]];
        let reference = [[-0.61, 0.33]];
        let empty = [-0.43, -0.57];
        let (img, px) =
            render_scatter(&sample, Some(&reference), "probe", bounds, &[sample[0], reference[0], empty])
                .unwrap();
        assert_eq!(img.dimensions(), SCATTER_SIZE);
        let at = |(x, y): (i32, i32)| *img.get_pixel(x as u32, y as u32);
        let s = at(px[0]);
        assert!(s.0[2] as i32 > s.0[0] as i32 + 60, "sample pixel {s:?} should be blue");
        let r = at(px[1]);
        assert!(!is_white(&r) && r.0[0].abs_diff(r.0[2]) < 10, "reference pixel {r:?} should be grey");
        assert!(is_white(&at(px[2])), "empty area should be white");
        // Upper-right quadrant point is right of and above the lower-left probe.
        assert!(px[0].0 > px[2].0 && px[0].1 < px[2].1);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.6000000000000001), "0.6");
        assert_eq!(tick_label(50.0), "50");
        assert_eq!(tick_label(0.0125), "0.0125");
        assert_eq!(tick_label(-2.5), "-2.5");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(2.5e-5), "2.50e-5");
        assert_eq!(tick_label(123456.0), "1.23e5");
    }

    #[test]
    fn auto_bounds_cover_reference_and_bulk_of_points() {
        let reference: Vec<[f64; 2]> = (0..50).map(|i| [i as f64 / 49.0 * 2.0 - 1.0, 0.0]).collect();
        let mut pts: Vec<[f64; 2]> = (0..1000).map(|i| [0.0, 3.0 + i as f64 / 1000.0]).collect();
        pts[0] = [1e9, 1e9]; // a stray outlier must not set the view
        pts[1] = [f64::NAN, 0.0];
        let b = PlotBounds::auto(&pts, Some(&reference));
        assert!(b.x.0 < -1.0 && b.x.1 > 1.0 && b.y.0 < 0.0 && b.y.1 > 3.99, "{b:?}");
        assert!(b.x.1 < 100.0 && b.y.1 < 100.0, "{b:?}");
        assert!(((b.x.1 - b.x.0) - (b.y.1 - b.y.0)).abs() < 1e-12, "square view");
        assert_eq!(PlotBounds::auto(&[[f64::NAN, 1.0]], None), PlotBounds { x: (-1.0, 1.0), y: (-1.0, 1.0) });
    }
}
