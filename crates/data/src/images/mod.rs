//! Image data sets: embedded UCI digits, MNIST / Fashion-MNIST IDX, CIFAR-10
//! binary batches, folders of PNG/JPEG; all as `[N, C, H, W]` f32 in [−1, 1]
//! (DDPM §3.3: integers 0..255 scaled linearly to [−1, 1]), a seeded shuffling
//! batcher with optional horizontal flips.

mod batcher;
mod cifar;
mod digits;
mod error;
mod folder;
mod idx;
mod resize;
mod set;
mod spec;

pub use batcher::{gather, hflip_chw, Batcher, ImageBatch};
pub use cifar::{
    cifar_batches_dir, load_cifar10_dir, load_cifar_files, parse_cifar_batch, CIFAR_RECORD, CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
};
pub use digits::{load_digits, DIGITS_COUNT, DIGITS_CSV_GZ};
pub use error::{ImageError, Result};
pub use folder::{resize_center_crop, ImageFolder};
pub use idx::{find_idx_file, idx_image_set, load_mnist_dir, maybe_gunzip, parse_idx, read_idx, IdxArray};
pub use resize::{bicubic_resize, bilinear_resize};
pub use set::{ImageDataset, ImageSet};
pub use spec::{load_images, sample_indices, ImageSpec, Split, DEFAULT_FOLDER_SIZE};
