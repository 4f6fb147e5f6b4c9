//! `rediffuse inpaint`: RePaint (Lugmayr et al. 2022) with any trained run.

use crate::args::InpaintArgs;
use crate::cmd::sample::from_run;
use crate::io::prepare_output;
use crate::progress;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediffuse_core::noise::batches;
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::{read_npy_tensor, write_npy_tensor, NpyDtype};
use rediffuse_sample::{repaint_sample, RePaintOptions};
use std::path::Path;

/// The images of `--image`: `[N, C, H, W]` in [−1, 1] for a model taking `[C, H, W]`.
fn load_images(path: &Path, shape: &[usize]) -> Result<Tensor> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let x = if is_npy {
        let x = read_npy_tensor(path, &Device::Cpu).with_context(|| format!("reading {}", path.display()))?;
        match x.rank() {
            3 => x.unsqueeze(0)?,
            4 => x,
            _ => bail!(
                "{} holds an array of shape {:?}; expected [N, C, H, W] or [C, H, W]",
                path.display(),
                x.dims()
            ),
        }
    } else {
        let img = image::open(path).with_context(|| format!("reading image {}", path.display()))?;
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        if (ih, iw) != (h, w) {
            bail!("{} is {iw}×{ih} but the model takes {w}×{h} images", path.display());
        }
        let v: Vec<f32> = match c {
            1 => img.to_luma8().into_raw().iter().map(|&p| p as f32 / 127.5 - 1.0).collect(),
            3 => {
                let rgb = img.to_rgb8();
                let mut v = vec![0f32; 3 * h * w];
                for (i, p) in rgb.pixels().enumerate() {
                    for k in 0..3 {
                        v[k * h * w + i] = p[k] as f32 / 127.5 - 1.0;
                    }
                }
                v
            }
            _ => bail!("PNG/JPEG input needs a 1- or 3-channel model, this one has {c}"),
        };
        Tensor::from_vec(v, (1, c, h, w), &Device::Cpu)?
    };
    let x = x.to_dtype(DType::F32)?;
    if x.dims()[1..] != *shape {
        bail!("{} holds images of shape {:?}, the model takes {shape:?}", path.display(), &x.dims()[1..]);
    }
    if x.dim(0)? == 0 {
        bail!("{} holds no images", path.display());
    }
    if !x.sum_all()?.to_scalar::<f32>()?.is_finite() {
        bail!("{} contains NaN or infinite values", path.display());
    }
    Ok(x)
}

/// The mask of `--mask` (1 = known), `[C, H, W]`.
fn build_mask(spec: &str, shape: &[usize]) -> Result<Tensor> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let plane: Vec<f32> = match spec.split_once(':') {
        None if spec == "half" => (0..h * w).map(|i| f32::from(u8::from(i / w < h / 2))).collect(),
        None if spec == "left" => (0..h * w).map(|i| f32::from(u8::from(i % w < w / 2))).collect(),
        Some(("box", b)) => {
            let v: Vec<usize> = b
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .with_context(|| format!("--mask box:X0,Y0,X1,Y1 takes four pixel indices, got `{b}`"))?;
            let [x0, y0, x1, y1] = v[..] else {
                bail!("--mask box:X0,Y0,X1,Y1 takes four numbers, got `{b}`")
            };
            if !(x0 < x1 && y0 < y1 && x1 <= w && y1 <= h) {
                bail!("--mask box {x0},{y0},{x1},{y1} must satisfy X0 < X1 <= {w} and Y0 < Y1 <= {h}");
            }
            (0..h * w)
                .map(|i| {
                    let (y, x) = (i / w, i % w);
                    f32::from(u8::from(!((x0..x1).contains(&x) && (y0..y1).contains(&y))))
                })
                .collect()
        }
        Some(("random", seed)) => {
            let seed: u64 =
                seed.parse().with_context(|| format!("--mask random:SEED takes an integer, got `{seed}`"))?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..h * w).map(|_| f32::from(u8::from(rng.random::<f64>() < 0.5))).collect()
        }
        _ => {
            let path = Path::new(spec);
            if !path.exists() {
                bail!("--mask takes half, left, box:X0,Y0,X1,Y1, random:SEED or a mask image; `{spec}` is none of them");
            }
            let img =
                image::open(path).with_context(|| format!("reading mask {}", path.display()))?.to_luma8();
            if (img.height() as usize, img.width() as usize) != (h, w) {
                bail!(
                    "mask {} is {}×{} but the images are {w}×{h}",
                    path.display(),
                    img.width(),
                    img.height()
                );
            }
            img.into_raw().iter().map(|&p| f32::from(u8::from(p > 127))).collect()
        }
    };
    let known = plane.iter().filter(|&&m| m > 0.0).count();
    if known == 0 || known == plane.len() {
        bail!("the mask keeps {known} of {} pixels: nothing to condition on or nothing to fill", plane.len());
    }
    Ok(Tensor::from_vec(plane.repeat(c), (c, h, w), &Device::Cpu)?)
}

pub fn run(a: InpaintArgs) -> Result<()> {
    if a.repeat == 0 || a.batch_size == 0 {
        bail!("--repeat and --batch-size must be >= 1");
    }
    prepare_output(&a.out, a.force)?;
    if let Some(p) = &a.png {
        prepare_output(p, a.force)?;
    }
    let model = from_run(&a.run, !a.no_ema)?;
    if model.decoder.is_some() {
        bail!("inpaint works in pixel space; {} is a latent-diffusion run", a.run.display());
    }
    let shape = model.sample_shape.clone();
    if shape.len() != 3 {
        bail!("inpaint works on image runs; this run's samples have shape {shape:?}");
    }
    let images = load_images(&a.image, &shape)?;
    let mask = build_mask(&a.mask, &shape)?;
    let clip = match (a.no_clip, a.clip) {
        (true, _) => None,
        (false, Some(c)) => Some(crate::io::finite("clip", c as f64, true)? as f32),
        (false, None) => Some(1.0),
    };
    let opts = RePaintOptions {
        steps: a.steps,
        jump_length: a.jump_length,
        jump_n_sample: a.resample,
        eta: a.eta,
        clip_x0: clip,
    };
    rediffuse_sample::repaint_timesteps(model.schedule().len(), &opts)?;
    let sm = model.sample_model()?;
    let n_img = images.dim(0)?;
    let idx: Vec<u32> = (0..n_img as u32).flat_map(|i| std::iter::repeat_n(i, a.repeat)).collect();
    let known = images.index_select(&Tensor::from_slice(&idx, idx.len(), &Device::Cpu)?, 0)?;
    let n = idx.len();
    let bar = progress::bar(n as u64, a.quiet, "inpaint");
    let (mut out, mut nfe) = (Vec::new(), 0);
    for (start, count) in batches(n, a.batch_size) {
        let mut noise = NoiseSource::new(a.seed, start as u64, count);
        let x_t = noise.randn(&shape, &Device::Cpu)?;
        let (x, k) = repaint_sample(
            sm.discrete(),
            sm.schedule(),
            x_t,
            &known.narrow(0, start, count)?,
            &mask,
            &opts,
            &mut noise,
            None,
        )?;
        out.push(x);
        nfe = k;
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    let x = Tensor::cat(&out, 0)?;
    write_npy_tensor(&a.out, &x, NpyDtype::F32).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(p) = &a.png {
        // per image: the known part (unknown pixels at 0, mid grey), then its completions
        let shown = images.broadcast_mul(&mask.unsqueeze(0)?)?;
        let mut rows = Vec::new();
        for i in 0..n_img {
            rows.push(shown.narrow(0, i, 1)?);
            rows.push(x.narrow(0, i * a.repeat, a.repeat)?);
        }
        let h = shape[1];
        rediffuse_eval::grid::image_grid_png(
            p,
            &Tensor::cat(&rows, 0)?,
            1 + a.repeat,
            (64 / h.max(1)).clamp(1, 8),
            2,
        )?;
    }
    if !a.quiet {
        println!(
            "inpainted {n_img} image(s) × {} ({nfe} model evaluations each) into {}",
            a.repeat,
            a.out.display()
        );
    }
    Ok(())
}
