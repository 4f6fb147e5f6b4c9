//! PNG pictures of image samples: a sample grid and a denoising strip
//! (x_t and the predicted x̂₀ at chosen steps, DDPM paper Fig. 6).
//!
//! Pixel values in [−1, 1] map to bytes by `round((v + 1) / 2 · 255)`, clamped
//! (DDPM §3.3 inverted). Grey (1 channel) images are written as 8-bit grey PNGs,
//! RGB (3 channels) as 8-bit RGB. Padding between tiles is white (255).

use candle_core::{DType, Tensor};
use std::path::{Path, PathBuf};

/// Errors of the picture writers.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: image::ImageError },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn invalid(name: &'static str, reason: impl Into<String>) -> GridError {
    GridError::InvalidArgument { name, reason: reason.into() }
}

/// Value of padding pixels.
pub const PAD_VALUE: u8 = 255;

/// Map a value in [−1, 1] to a byte.
pub fn to_byte(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// A canvas of `channels` (1 or 3) interleaved bytes.
struct Canvas {
    w: usize,
    h: usize,
    c: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize, c: usize) -> Self {
        Self { w, h, c, px: vec![PAD_VALUE; w * h * c] }
    }

    /// Paste one CHW image (values in [−1, 1]) at (x0, y0), each pixel as a `scale × scale` block.
    fn paste(&mut self, img: &[f32], [c, h, w]: [usize; 3], x0: usize, y0: usize, scale: usize) {
        for y in 0..h * scale {
            for x in 0..w * scale {
                let (sy, sx) = (y / scale, x / scale);
                let o = ((y0 + y) * self.w + x0 + x) * self.c;
                for ch in 0..self.c {
                    self.px[o + ch] = to_byte(img[ch.min(c - 1) * h * w + sy * w + sx]);
                }
            }
        }
    }

    fn fill(&mut self, x: usize, y: usize, v: u8) {
        if x < self.w && y < self.h {
            let o = (y * self.w + x) * self.c;
            self.px[o..o + self.c].fill(v);
        }
    }

    fn save(self, path: &Path) -> Result<(), GridError> {
        let err = |source| GridError::Write { path: path.to_path_buf(), source };
        let (w, h) = (self.w as u32, self.h as u32);
        if self.c == 1 {
            image::GrayImage::from_raw(w, h, self.px)
                .ok_or_else(|| invalid("canvas", "size"))?
                .save(path)
                .map_err(err)
        } else {
            image::RgbImage::from_raw(w, h, self.px)
                .ok_or_else(|| invalid("canvas", "size"))?
                .save(path)
                .map_err(err)
        }
    }
}

/// Check `[N, C, H, W]` with C ∈ {1, 3}; return (N, [C, H, W], flat f32 data).
fn images_data(images: &Tensor) -> Result<(usize, [usize; 3], Vec<f32>), GridError> {
    let (n, c, h, w) = images
        .dims4()
        .map_err(|_| invalid("images", format!("expected [N, C, H, W], got {:?}", images.dims())))?;
    if c != 1 && c != 3 {
        return Err(invalid("images", format!("need 1 or 3 channels, got {c}")));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(invalid("images", format!("empty tensor {:?}", images.dims())));
    }
    let data = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((n, [c, h, w], data))
}

/// Write `images` (`[N, C, H, W]` in [−1, 1], C = 1 or 3) as a grid PNG with `nrow`
/// images per row (rows = ⌈N / nrow⌉), every pixel upscaled to `scale × scale`, and
/// `padding` white pixels around and between tiles. Tile `i` has its top-left corner at
/// `(padding + (i mod nrow)·(W·scale + padding), padding + (i div nrow)·(H·scale + padding))`.
pub fn image_grid_png(
    path: &Path,
    images: &Tensor,
    nrow: usize,
    scale: usize,
    padding: usize,
) -> Result<(), GridError> {
    if nrow == 0 || scale == 0 {
        return Err(invalid("nrow/scale", "must be > 0"));
    }
    let (n, shape @ [c, h, w], data) = images_data(images)?;
    let cols = nrow.min(n);
    let rows = n.div_ceil(nrow);
    let (tw, th) = (w * scale, h * scale);
    let mut canvas = Canvas::new(padding + cols * (tw + padding), padding + rows * (th + padding), c);
    let per = c * h * w;
    for i in 0..n {
        let x0 = padding + (i % nrow) * (tw + padding);
        let y0 = padding + (i / nrow) * (th + padding);
        canvas.paste(&data[i * per..(i + 1) * per], shape, x0, y0, scale);
    }
    canvas.save(path)
}

/// One column of a denoising strip: a label (e.g. `"t=500"`), x_t and the predicted x̂₀,
/// both `[S, C, H, W]` for the same S samples.
#[derive(Debug, Clone)]
pub struct StripColumn {
    pub label: String,
    pub x_t: Tensor,
    pub x0_pred: Tensor,
}

/// Write a denoising strip: one column per entry of `columns` (typically decreasing t),
/// a label band on top, then for each sample two rows: x_t above, x̂₀ below
/// (left margin marks them `xt` / `x0`). Labels use a built-in 3×5 pixel font drawn at
/// `max(1, scale / 2)` pixels per font pixel, in black on the white padding.
pub fn denoising_strip_png(
    path: &Path,
    columns: &[StripColumn],
    scale: usize,
    padding: usize,
) -> Result<(), GridError> {
    if columns.is_empty() {
        return Err(invalid("columns", "need at least one step"));
    }
    if scale == 0 {
        return Err(invalid("scale", "must be > 0"));
    }
    let (s, shape @ [c, h, w], _) = images_data(&columns[0].x_t)?;
    let mut data = Vec::with_capacity(columns.len());
    for col in columns {
        let (sa, sha, a) = images_data(&col.x_t)?;
        let (sb, shb, b) = images_data(&col.x0_pred)?;
        if sa != s || sb != s || sha != shape || shb != shape {
            return Err(invalid(
                "columns",
                format!("column `{}` shapes differ from the first column", col.label),
            ));
        }
        data.push((a, b));
    }
    let fs = (scale / 2).max(1);
    let (tw, th) = (w * scale, h * scale);
    let max_label = columns.iter().map(|c| c.label.chars().count()).max().unwrap_or(0);
    let col_w = tw.max(text_width(max_label + 1, fs));
    let band = 5 * fs + padding.max(2);
    let margin = text_width(2, fs) + padding.max(2);
    let width = margin + padding + columns.len() * (col_w + padding);
    let height = band + padding + 2 * s * (th + padding);
    let mut canvas = Canvas::new(width, height, c);
    let per = c * h * w;
    for (k, (col, (xt, x0))) in columns.iter().zip(&data).enumerate() {
        let x0_px = margin + padding + k * (col_w + padding);
        draw_text(&mut canvas, &col.label, x0_px, padding.max(2) / 2, fs);
        for i in 0..s {
            let y_t = band + padding + 2 * i * (th + padding);
            canvas.paste(&xt[i * per..(i + 1) * per], shape, x0_px, y_t, scale);
            canvas.paste(&x0[i * per..(i + 1) * per], shape, x0_px, y_t + th + padding, scale);
        }
    }
    for i in 0..s {
        let y_t = band + padding + 2 * i * (th + padding);
        draw_text(&mut canvas, "xt", padding.max(2) / 2, y_t, fs);
        draw_text(&mut canvas, "x0", padding.max(2) / 2, y_t + th + padding, fs);
    }
    canvas.save(path)
}

/// Width in pixels of `n` glyphs (3 pixels + 1 space each) at font scale `fs`.
fn text_width(n: usize, fs: usize) -> usize {
    n * 4 * fs
}

/// 3×5 glyphs, rows top to bottom, bit 2 = left column.
fn glyph(ch: char) -> [u8; 5] {
    match ch.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        '=' => [0, 7, 0, 7, 0],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        '_' => [0, 0, 0, 0, 7],
        '/' => [1, 1, 2, 4, 4],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        ' ' => [0; 5],
        _ => [7, 7, 7, 7, 7],
    }
}

/// Draw `text` in black with its top-left corner at (x, y).
fn draw_text(canvas: &mut Canvas, text: &str, x: usize, y: usize, fs: usize) {
    for (k, ch) in text.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for dy in 0..fs {
                        for dx in 0..fs {
                            canvas.fill(x + (k * 4 + col) * fs + dx, y + row * fs + dy, 0);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rediffuse-grid-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("out.png")
    }

    #[test]
    fn byte_mapping() {
        assert_eq!((to_byte(-1.0), to_byte(0.0), to_byte(1.0), to_byte(0.5)), (0, 128, 255, 191));
        assert_eq!((to_byte(-7.0), to_byte(3.0), to_byte(f32::NAN)), (0, 255, 0));
    }

    #[test]
    fn grey_grid_pixels_at_known_positions() {
        // 3 images 2×2 (values -1, 0, 0.5 + a marked pixel), nrow 2, scale 3, padding 1
        let mut v = vec![-1f32; 4];
        v.extend([0.0; 4]);
        v.extend([0.5, 0.5, 0.5, -1.0]); // image 2: bottom-right pixel black
        let t = Tensor::from_vec(v, (3, 1, 2, 2), &Device::Cpu).unwrap();
        let path = tmp("grey");
        image_grid_png(&path, &t, 2, 3, 1).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!(img.color(), image::ColorType::L8);
        let g = img.to_luma8();
        // width = 1 + 2·(6 + 1) = 15, height = 1 + 2·(6 + 1) = 15
        assert_eq!(g.dimensions(), (15, 15));
        let px = |x: u32, y: u32| g.get_pixel(x, y).0[0];
        assert_eq!(px(0, 0), 255); // padding
        assert_eq!(px(1, 1), 0); // image 0
        assert_eq!(px(6, 6), 0);
        assert_eq!(px(7, 3), 255); // padding column between tiles
        assert_eq!(px(8, 1), 128); // image 1 starts at x = 1 + 7
        assert_eq!(px(1, 8), 191); // image 2 starts at y = 8
        assert_eq!(px(4, 11), 0); // image 2, pixel (1, 1) → block x 4..7, y 11..14
        assert_eq!(px(3, 10), 191);
        assert_eq!(px(10, 10), 255); // empty 4th slot is padding
    }

    #[test]
    fn rgb_grid_channels() {
        // one 1×1 RGB image (−1, 0, 1), scale 2, no padding
        let t = Tensor::from_vec(vec![-1f32, 0.0, 1.0], (1, 3, 1, 1), &Device::Cpu).unwrap();
        let path = tmp("rgb");
        image_grid_png(&path, &t, 8, 2, 0).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2, 2));
        assert!(img.pixels().all(|p| p.0 == [0, 128, 255]));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = tmp("bad");
        let t2 = Tensor::zeros((1, 2, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(image_grid_png(&p, &t2, 1, 1, 0).is_err());
        let t3 = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(image_grid_png(&p, &t3, 1, 1, 0).is_err());
        let ok = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(image_grid_png(&p, &ok, 0, 1, 0).is_err());
        assert!(denoising_strip_png(&p, &[], 1, 0).is_err());
        let other = Tensor::zeros((2, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let col = StripColumn { label: "t=1".into(), x_t: ok.clone(), x0_pred: other };
        assert!(denoising_strip_png(&p, &[col], 1, 0).is_err());
    }

    #[test]
    fn strip_layout_and_label() {
        // 2 columns, 1 sample of 2×2 grey; scale 4 → font scale 2, padding 2
        let dev = Device::Cpu;
        let mk = |v: f32| Tensor::full(v, (1, 1, 2, 2), &dev).unwrap();
        let cols = vec![
            StripColumn { label: "t=9".into(), x_t: mk(-1.0), x0_pred: mk(0.0) },
            StripColumn { label: "t=0".into(), x_t: mk(1.0), x0_pred: mk(0.5) },
        ];
        let path = tmp("strip");
        denoising_strip_png(&path, &cols, 4, 2).unwrap();
        let g = image::open(&path).unwrap().to_luma8();
        // fs = 2; tile 8×8; col_w = max(8, (3 + 1) glyphs · 4 · 2 = 32) = 32; band = 10 + 2 = 12;
        // margin = 2 glyphs · 8 + 2 = 18; width = 18 + 2 + 2·(32 + 2) = 88; height = 12 + 2 + 2·(8 + 2) = 34
        assert_eq!(g.dimensions(), (88, 34));
        let px = |x: u32, y: u32| g.get_pixel(x, y).0[0];
        let (c0, c1, y_t, y_0) = (20, 20 + 34, 14, 14 + 10);
        assert_eq!(px(c0, y_t), 0); // x_t = -1
        assert_eq!(px(c0 + 7, y_0 + 7), 128); // x0 = 0
        assert_eq!(px(c1, y_t), 255); // x_t = 1
        assert_eq!(px(c1 + 3, y_0 + 3), 191); // x0 = 0.5
        assert_eq!(px(c0 + 9, y_t), 255); // padding right of the 8-px tile
                                          // label "t=9" at (20, 1): 't' top row is 3 font pixels wide → x 20..26, y 1..3 black
        assert_eq!(px(c0, 1), 0);
        assert_eq!(px(c0 + 5, 2), 0);
        assert_eq!(px(c0, 3), 255); // 't' second row: only the middle column
        assert_eq!(px(c0 + 2, 3), 0);
        // left margin "xt": 'x' row 0 = 101 at x 1..3 and 5..7
        assert_eq!(px(1, y_t), 0);
        assert_eq!(px(3, y_t), 255);
    }
}
