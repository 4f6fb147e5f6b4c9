//! IDX files (MNIST, Fashion-MNIST): big-endian header `[0, 0, type, ndim]`,
//! `ndim` u32 dimensions, then the row-major data. Raw or gzip (detected by content).

use super::error::{ImageError, Result};
use super::set::ImageSet;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes (type code 0x08).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Decompress `bytes` if they start with the gzip magic `1f 8b`, else return them as they are.
pub fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::new();
        GzDecoder::new(bytes.as_slice()).read_to_end(&mut out).map_err(|e| ImageError::io(path, e))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parse an (uncompressed) IDX byte buffer; `path` only names it in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(ImageError::Truncated { path: path.into(), expected: 4, found: bytes.len() as u64 });
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0 {
        return Err(ImageError::BadMagic { path: path.into(), found: bytes[..4].to_vec() });
    }
    if bytes[2] != 0x08 {
        return Err(ImageError::UnsupportedIdxType { path: path.into(), code: bytes[2] });
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(ImageError::Truncated {
            path: path.into(),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let count = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let Some(count) = count else { return Err(ImageError::malformed(path, "dimension product overflows")) };
    let expected = header as u64 + count;
    if (bytes.len() as u64) < expected {
        return Err(ImageError::Truncated { path: path.into(), expected, found: bytes.len() as u64 });
    }
    if (bytes.len() as u64) > expected {
        return Err(ImageError::malformed(path, format!("{} trailing bytes", bytes.len() as u64 - expected)));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Read an IDX file, raw or gzip-compressed.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::io(path, e))?;
    parse_idx(&maybe_gunzip(bytes, path)?, path)
}

/// Pair an images array `[N, H, W]` with a labels array `[N]` into an [`ImageSet`] in [−1, 1].
pub fn idx_image_set(images: IdxArray, labels: Option<IdxArray>, path: &Path) -> Result<ImageSet> {
    if images.dims.len() != 3 {
        return Err(ImageError::malformed(
            path,
            format!("images must be 3-D [N, H, W], got {:?}", images.dims),
        ));
    }
    let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
    let labels = match labels {
        Some(l) => {
            if l.dims != [n] {
                return Err(ImageError::malformed(
                    path,
                    format!("labels {:?} do not match {n} images", l.dims),
                ));
            }
            if let Some(bad) = l.data.iter().find(|&&y| y > 9) {
                return Err(ImageError::malformed(path, format!("label {bad} outside 0..9")));
            }
            Some(l.data.iter().map(|&y| y as u32).collect())
        }
        None => None,
    };
    let classes = labels.as_ref().map(|_| 10);
    ImageSet::from_u8([1, h, w], images.data, 255, labels, classes)
}

/// Find `stem` in `dir` as a raw file or with a `.gz` suffix.
pub fn find_idx_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    for cand in [dir.join(stem), dir.join(format!("{stem}.gz"))] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(ImageError::Missing(format!("{stem}[.gz] in {}", dir.display())))
}

/// Load an MNIST-layout directory (`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`).
pub fn load_mnist_dir(dir: &Path, train: bool) -> Result<ImageSet> {
    let prefix = if train { "train" } else { "t10k" };
    let img_path = find_idx_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lab_path = find_idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    idx_image_set(read_idx(&img_path)?, Some(read_idx(&lab_path)?), &img_path)
}
