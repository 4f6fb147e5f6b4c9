//! Seeded shuffling batcher: converts only the images of the current batch to a tensor.

use super::error::{ImageError, Result};
use super::set::ImageDataset;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batch of images `[B, C, H, W]` in [−1, 1] and their labels `[B]` (u32), if any.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub images: Tensor,
    pub labels: Option<Tensor>,
}

/// Flip a CHW image left–right in place.
pub fn hflip_chw(img: &mut [f32], shape: [usize; 3]) {
    let [_, h, w] = shape;
    for row in img.chunks_mut(w).take(shape[0] * h) {
        row.reverse();
    }
}

/// Endless, epoch-wise shuffled batches. Epoch `e` uses the permutation drawn from
/// ChaCha8 (`seed`, stream `e`), so the order is reproducible and independent of
/// how many batches were taken before. With `hflip`, each image is mirrored with
/// probability ½ (drawn from the same stream).
pub struct Batcher<'a> {
    dataset: &'a dyn ImageDataset,
    batch_size: usize,
    seed: u64,
    hflip: bool,
    epoch: u64,
    order: Vec<usize>,
    flips: Vec<bool>,
    pos: usize,
}

impl<'a> Batcher<'a> {
    pub fn new(dataset: &'a dyn ImageDataset, batch_size: usize, seed: u64, hflip: bool) -> Result<Self> {
        if batch_size == 0 {
            return Err(ImageError::invalid("batch_size", "must be > 0"));
        }
        if dataset.is_empty() {
            return Err(ImageError::invalid("dataset", "is empty"));
        }
        let mut b =
            Self { dataset, batch_size, seed, hflip, epoch: 0, order: Vec::new(), flips: Vec::new(), pos: 0 };
        b.shuffle();
        Ok(b)
    }

    fn shuffle(&mut self) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.epoch);
        self.order = (0..self.dataset.len()).collect();
        self.order.shuffle(&mut rng);
        self.flips = (0..self.order.len()).map(|_| self.hflip && rng.random::<bool>()).collect();
        self.pos = 0;
    }

    /// Completed epochs.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Next `batch_size` images; a batch never straddles epochs (the last one of an
    /// epoch may be smaller), after which the next epoch's permutation starts.
    pub fn next_batch(&mut self, device: &Device) -> Result<ImageBatch> {
        if self.pos >= self.order.len() {
            self.epoch += 1;
            self.shuffle();
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let shape = self.dataset.image_shape();
        let per: usize = shape.iter().product();
        let mut data = Vec::with_capacity((end - self.pos) * per);
        let mut labels = Vec::with_capacity(end - self.pos);
        for k in self.pos..end {
            let idx = self.order[k];
            let mut img = self.dataset.get(idx)?;
            if self.flips[k] {
                hflip_chw(&mut img, shape);
            }
            data.extend_from_slice(&img);
            labels.push(self.dataset.label(idx));
        }
        let n = end - self.pos;
        self.pos = end;
        let images = Tensor::from_vec(data, (n, shape[0], shape[1], shape[2]), device)?;
        let labels = if labels.iter().all(Option::is_some) {
            let l: Vec<u32> = labels.into_iter().flatten().collect();
            Some(Tensor::from_vec(l, n, device)?)
        } else {
            None
        };
        Ok(ImageBatch { images, labels })
    }
}

/// Gather the images at `indices` into `[N, C, H, W]` (and labels).
pub fn gather(dataset: &dyn ImageDataset, indices: &[usize], device: &Device) -> Result<ImageBatch> {
    let shape = dataset.image_shape();
    let per: usize = shape.iter().product();
    let mut data = Vec::with_capacity(indices.len() * per);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        data.extend(dataset.get(i)?);
        labels.push(dataset.label(i));
    }
    let n = indices.len();
    let images = Tensor::from_vec(data, (n, shape[0], shape[1], shape[2]), device)?;
    let labels = if n > 0 && labels.iter().all(Option::is_some) {
        Some(Tensor::from_vec(labels.into_iter().flatten().collect::<Vec<u32>>(), n, device)?)
    } else {
        None
    };
    Ok(ImageBatch { images, labels })
}
