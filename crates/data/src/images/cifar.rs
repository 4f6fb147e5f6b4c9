//! CIFAR-10 binary batches: records of 3,073 bytes, one label byte (0–9) then
//! 3,072 pixel bytes in CHW order (1,024 red, 1,024 green, 1,024 blue, row-major 32×32).

use super::error::{ImageError, Result};
use super::set::ImageSet;
use std::path::{Path, PathBuf};

/// Bytes per record.
pub const CIFAR_RECORD: usize = 3073;

/// Training batch file names.
pub const CIFAR_TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// Test batch file name.
pub const CIFAR_TEST_FILE: &str = "test_batch.bin";

/// Parse the records of one batch file into (pixels, labels), appending.
pub fn parse_cifar_batch(
    bytes: &[u8],
    path: &Path,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        let expected = (bytes.len() / CIFAR_RECORD + 1) * CIFAR_RECORD;
        return Err(ImageError::Truncated {
            path: path.into(),
            expected: expected as u64,
            found: bytes.len() as u64,
        });
    }
    for (i, rec) in bytes.chunks(CIFAR_RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(ImageError::malformed(path, format!("record {i}: label {} outside 0..9", rec[0])));
        }
        labels.push(rec[0] as u32);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Directory holding the batch files: `dir` itself or its `cifar-10-batches-bin` child.
pub fn cifar_batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join(CIFAR_TEST_FILE).is_file() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Load the given batch files of `dir` as 3×32×32 images in [−1, 1] with labels.
pub fn load_cifar_files(dir: &Path, files: &[&str]) -> Result<ImageSet> {
    let dir = cifar_batches_dir(dir);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in files {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(ImageError::Missing(path.display().to_string()));
        }
        let bytes = std::fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
        parse_cifar_batch(&bytes, &path, &mut pixels, &mut labels)?;
    }
    ImageSet::from_u8([3, 32, 32], pixels, 255, Some(labels), Some(10))
}

/// Load the CIFAR-10 training (5 batches) or test split from `dir`.
pub fn load_cifar10_dir(dir: &Path, train: bool) -> Result<ImageSet> {
    if train {
        load_cifar_files(dir, &CIFAR_TRAIN_FILES)
    } else {
        load_cifar_files(dir, &[CIFAR_TEST_FILE])
    }
}
