//! Property / mutation fuzzing of the data layer's file readers on stable Rust (proptest):
//! `.npy` (`read_npy`), IDX raw and gzip (`read_idx`, `idx_image_set`, `load_mnist_dir`), CIFAR-10
//! batches (`load_cifar_files`) and image folders (`ImageFolder`, PNG/JPEG).
//!
//! Every test starts from valid encodings it writes itself, applies random mutations
//! (`fuzz_util`), writes the result to a file and reads it back: the reader must return `Ok` or
//! `Err`, never panic or abort (a single allocation above `fuzz_util::ALLOC_LIMIT` aborts the
//! process), and an `Ok` result must be self-consistent. Plain random bytes are fed too.
//!
//! The plain tests run a fixed number of cases (all of them well under a minute in
//! `cargo test --release`); the `*_long` tests are `#[ignore]`d and run `REDIFFUSE_FUZZ_CASES`
//! cases each (default 100 000):
//! `REDIFFUSE_FUZZ_CASES=20000 cargo test --release -p rediffuse-data --test fuzz_readers -- --ignored --nocapture`

mod fuzz_util;

use flate2::write::GzEncoder;
use flate2::Compression;
use fuzz_util::{apply, fuzz, long_cases, mutations, put, scratch_dir, Mutation};
use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;
use rediffuse_data::images::{
    idx_image_set, load_cifar_files, load_mnist_dir, read_idx, IdxArray, ImageDataset, ImageFolder, ImageSet,
    CIFAR_RECORD,
};
use rediffuse_data::npy::{encode_npy, encode_npy_f64, parse_npy};
use rediffuse_data::{read_npy, NpyArray, NpyDtype};
use std::io::Write;
use std::path::Path;

/// Deterministic filler bytes.
fn bytes_of(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------
// .npy

/// A `.npy` file with a hand-written header (dtypes and versions the project's writer does not
/// produce).
fn npy_raw(major: u8, dict: &str, payload: &[u8]) -> Vec<u8> {
    let prefix = if major == 1 { 10 } else { 12 };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let hlen = total - prefix;
    let mut out = b"\x93NUMPY".to_vec();
    out.push(major);
    out.push(0);
    if major == 1 {
        out.extend_from_slice(&(hlen as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(hlen as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for shape in [vec![], vec![0], vec![5], vec![2, 3], vec![2, 3, 2], vec![1, 0, 3]] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
        seeds.push(encode_npy(&shape, &data, NpyDtype::F32).unwrap());
        let d64: Vec<f64> = data.iter().map(|&v| v as f64).collect();
        seeds.push(encode_npy_f64(&shape, &d64, NpyDtype::F64).unwrap());
    }
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    seeds.push(npy_raw(1, &dict("|u1", "(2, 2, 2)"), &bytes_of(8, 1)));
    seeds.push(npy_raw(1, &dict("|i1", "(3,)"), &bytes_of(3, 2)));
    seeds.push(npy_raw(1, &dict(">i4", "(2,)"), &bytes_of(8, 3)));
    seeds.push(npy_raw(1, &dict("<i8", "(3L,)"), &bytes_of(24, 4)));
    seeds.push(npy_raw(1, &dict(">f8", "[2]"), &bytes_of(16, 5)));
    seeds.push(npy_raw(2, &dict("<f4", "(2, 1)"), &bytes_of(8, 6)));
    seeds.push(npy_raw(3, &dict("<f4", "(1,)"), &bytes_of(4, 7)));
    seeds.push(npy_raw(1, "{\"descr\": \"<f4\", \"fortran_order\": True, \"shape\": (1,)}", &bytes_of(4, 8)));
    seeds
}

/// An `Ok` array must have as many values as its shape says and turn into a tensor.
fn check_npy(a: &NpyArray) -> Result<(), TestCaseError> {
    let count = a.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    prop_assert_eq!(count, Some(a.data.len()), "shape {:?} vs {} values", a.shape, a.data.len());
    // the data came from the file: at most 8 bytes per value, and files here are small
    prop_assert!(a.data.len() <= 1 << 24);
    let t = a.to_tensor(&candle_core::Device::Cpu).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(t.dims(), a.shape.as_slice());
    Ok(())
}

fn npy_mutations(cases: u32, name: &str) {
    let seeds = npy_seeds();
    let dir = scratch_dir(name);
    let path = dir.join("x.npy");
    let strategy = (0..seeds.len(), mutations(6));
    fuzz(name, cases, strategy, |(k, muts)| {
        let bytes = apply(&seeds[k], &muts);
        put(&path, &bytes);
        if let Ok(a) = read_npy(&path) {
            fuzz_util::accepted();
            check_npy(&a)?;
        }
        Ok(())
    });
}

/// Header dicts built from a token grammar: arbitrary nesting (deep too), keys, values, numbers.
fn npy_header_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        ":",
        " ",
        "'descr'",
        "'<f4'",
        "'|u1'",
        "'>f8'",
        "'<i8'",
        "'fortran_order'",
        "False",
        "True",
        "'shape'",
        "0",
        "1",
        "3",
        "18446744073709551615",
        "18446744073709551616",
        "4294967296",
        "L",
        "'",
        "\"",
        "None",
        "-1",
        "1.5",
        "\n",
    ]);
    let random = prop::collection::vec(token, 0..60).prop_map(|t| t.concat());
    let deep = (prop::sample::select(vec!['(', '[', '{']), 1usize..200_000, any::<bool>()).prop_map(
        |(open, depth, closed)| {
            let close = match open {
                '(' => ')',
                '[' => ']',
                _ => '}',
            };
            let mut s = String::from("{'descr': '<f4', 'fortran_order': False, 'shape': ");
            s.extend(std::iter::repeat_n(open, depth));
            if closed {
                s.extend(std::iter::repeat_n(close, depth));
            }
            s.push('}');
            s
        },
    );
    let shape = prop::collection::vec(
        prop_oneof![0u64..4, Just(u64::MAX), Just(1 << 32), Just(1 << 62), any::<u64>()],
        0..6,
    )
    .prop_map(|dims| {
        let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", inner.join(", "))
    });
    prop_oneof![2 => random, 1 => deep, 2 => shape]
}

fn npy_grammar(cases: u32, name: &str) {
    let strategy = (npy_header_text(), prop::sample::select(vec![1u8, 2, 3]), 0usize..64);
    fuzz(name, cases, strategy, |(dict, major, payload)| {
        let bytes = npy_raw(major, &dict, &bytes_of(payload, 9));
        if let Ok(a) = parse_npy(&bytes, Path::new("grammar.npy")) {
            fuzz_util::accepted();
            check_npy(&a)?;
        }
        Ok(())
    });
}

fn npy_random(cases: u32, name: &str) {
    let strategy = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..512));
    fuzz(name, cases, strategy, |(magic, mut bytes)| {
        if magic {
            // give random bytes a valid magic and version so the header parser sees them
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.append(&mut bytes);
            bytes = b;
        }
        if let Ok(a) = parse_npy(&bytes, Path::new("random.npy")) {
            fuzz_util::accepted();
            check_npy(&a)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_npy_mutations() {
    npy_mutations(30_000, "npy_mutations");
}
#[test]
#[ignore]
fn fuzz_npy_mutations_long() {
    npy_mutations(long_cases(), "npy_mutations_long");
}
#[test]
fn fuzz_npy_grammar() {
    npy_grammar(10_000, "npy_grammar");
}
#[test]
#[ignore]
fn fuzz_npy_grammar_long() {
    npy_grammar(long_cases(), "npy_grammar_long");
}
#[test]
fn fuzz_npy_random() {
    npy_random(30_000, "npy_random");
}
#[test]
#[ignore]
fn fuzz_npy_random_long() {
    npy_random(long_cases(), "npy_random_long");
}

// ---------------------------------------------------------------------------------------------
// IDX (MNIST layout), raw and gzip

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn idx_seeds() -> Vec<Vec<u8>> {
    let labels: Vec<u8> = bytes_of(3, 11).iter().map(|b| b % 10).collect();
    vec![
        idx_bytes(&[3, 4, 5], &bytes_of(60, 10)),
        idx_bytes(&[3], &labels),
        idx_bytes(&[2, 2, 2, 2], &bytes_of(16, 12)),
        idx_bytes(&[0, 28, 28], &[]),
        idx_bytes(&[1, 1, 1], &[7]),
    ]
}

fn check_idx(a: &IdxArray) -> Result<(), TestCaseError> {
    let count = a.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    prop_assert_eq!(count, Some(a.data.len()), "dims {:?} vs {} bytes", a.dims, a.data.len());
    Ok(())
}

fn check_set(set: &ImageSet, labelled: bool) -> Result<(), TestCaseError> {
    let [c, h, w] = set.image_shape();
    prop_assert!(c * h * w > 0);
    prop_assert_eq!(set.labels().is_some(), labelled);
    if let Some(l) = set.labels() {
        prop_assert_eq!(l.len(), set.len());
        prop_assert!(l.iter().all(|&y| y < 10));
    }
    for i in 0..set.len().min(3) {
        let img = set.get(i).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(img.len(), c * h * w);
        prop_assert!(img.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
    prop_assert!(set.get(set.len()).is_err());
    Ok(())
}

/// How a mutated IDX seed reaches the file: raw, gzip of the mutated bytes, mutated gzip.
#[derive(Debug, Clone, Copy)]
enum IdxForm {
    Raw,
    GzipOfMutated,
    MutatedGzip,
}

fn idx_mutations(cases: u32, name: &str) {
    let seeds = idx_seeds();
    let dir = scratch_dir(name);
    // an MNIST-layout folder: the images file is mutated, the labels file is seed 1 (or mutated)
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let img_path = mnist.join("t10k-images-idx3-ubyte");
    let lab_path = mnist.join("t10k-labels-idx1-ubyte");
    let form = prop_oneof![Just(IdxForm::Raw), Just(IdxForm::GzipOfMutated), Just(IdxForm::MutatedGzip)];
    let strategy = (0..seeds.len(), mutations(6), form, prop::option::of(mutations(3)));
    fuzz(name, cases, strategy, |(k, muts, form, label_muts)| {
        let bytes = match form {
            IdxForm::Raw => apply(&seeds[k], &muts),
            IdxForm::GzipOfMutated => gzip(&apply(&seeds[k], &muts)),
            IdxForm::MutatedGzip => apply(&gzip(&seeds[k]), &muts),
        };
        put(&img_path, &bytes);
        let labels = match &label_muts {
            Some(m) => apply(&seeds[1], m),
            None => seeds[1].clone(),
        };
        put(&lab_path, &labels);
        let images = read_idx(&img_path);
        if let Ok(a) = &images {
            fuzz_util::accepted();
            check_idx(a)?;
            if let Ok(set) = idx_image_set(a.clone(), None, &img_path) {
                check_set(&set, false)?;
                prop_assert_eq!(set.len() * set.image_shape().iter().product::<usize>(), a.data.len());
            }
        }
        let labels = read_idx(&lab_path);
        if let Ok(l) = &labels {
            check_idx(l)?;
        }
        if let Ok(set) = load_mnist_dir(&mnist, false) {
            prop_assert!(images.is_ok() && labels.is_ok());
            check_set(&set, true)?;
        }
        Ok(())
    });
}

fn idx_random(cases: u32, name: &str) {
    let dir = scratch_dir(name);
    let path = dir.join("x-idx3-ubyte");
    let strategy = (prop::sample::select(vec![0u8, 1, 2]), prop::collection::vec(any::<u8>(), 0..256));
    fuzz(name, cases, strategy, |(prefix, body)| {
        let bytes = match prefix {
            // a valid-looking magic with a random ndim, then random dims and data
            1 => [vec![0, 0, 8], body].concat(),
            2 => gzip(&[vec![0, 0, 8], body].concat()),
            _ => body,
        };
        put(&path, &bytes);
        if let Ok(a) = read_idx(&path) {
            fuzz_util::accepted();
            check_idx(&a)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_idx_mutations() {
    idx_mutations(20_000, "idx_mutations");
}
#[test]
#[ignore]
fn fuzz_idx_mutations_long() {
    idx_mutations(long_cases(), "idx_mutations_long");
}
#[test]
fn fuzz_idx_random() {
    idx_random(20_000, "idx_random");
}
#[test]
#[ignore]
fn fuzz_idx_random_long() {
    idx_random(long_cases(), "idx_random_long");
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 binary batches

fn cifar_seed(records: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for r in 0..records {
        out.push((r % 10) as u8);
        out.extend_from_slice(&bytes_of(CIFAR_RECORD - 1, r as u32 + 20));
    }
    out
}

fn cifar_mutations(cases: u32, name: &str) {
    let seeds = [cifar_seed(1), cifar_seed(3)];
    let dir = scratch_dir(name);
    let file = "data_batch_1.bin";
    let strategy = (0..seeds.len(), mutations(6));
    fuzz(name, cases, strategy, |(k, muts)| {
        let bytes = apply(&seeds[k], &muts);
        put(&dir.join(file), &bytes);
        if let Ok(set) = load_cifar_files(&dir, &[file]) {
            fuzz_util::accepted();
            prop_assert_eq!(set.image_shape(), [3, 32, 32]);
            prop_assert_eq!(set.len() * CIFAR_RECORD, bytes.len());
            check_set(&set, true)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_cifar_mutations() {
    cifar_mutations(3_000, "cifar_mutations");
}
#[test]
#[ignore]
fn fuzz_cifar_mutations_long() {
    cifar_mutations(long_cases(), "cifar_mutations_long");
}

// ---------------------------------------------------------------------------------------------
// Image folders (PNG, JPEG)

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn image_seeds() -> Vec<(Vec<u8>, &'static str)> {
    let rgb = image::RgbImage::from_fn(9, 4, |x, y| image::Rgb([(x * 20) as u8, (y * 50) as u8, 99]));
    let grey = image::GrayImage::from_fn(5, 7, |x, y| image::Luma([(x * y * 7) as u8]));
    let rgba = image::RgbaImage::from_fn(3, 3, |x, y| image::Rgba([x as u8 * 80, y as u8 * 80, 7, 200]));
    let grey16 =
        image::ImageBuffer::<image::Luma<u16>, _>::from_fn(4, 4, |x, y| image::Luma([(x * 9000 + y) as u16]));
    let jpeg_src = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    vec![
        (encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Png), "png"),
        (encode(&DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png), "png"),
        (encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png), "png"),
        (encode(&DynamicImage::ImageLuma16(grey16), ImageFormat::Png), "png"),
        (encode(&DynamicImage::ImageRgb8(jpeg_src), ImageFormat::Jpeg), "jpg"),
        (encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Jpeg), "jpeg"),
    ]
}

fn check_folder_image(f: &ImageFolder, size: usize, channels: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(f.image_shape(), [channels, size, size]);
    if let Ok(img) = f.get(0) {
        fuzz_util::accepted();
        prop_assert_eq!(img.len(), channels * size * size);
        prop_assert!(img.iter().all(|v| (-1.0..=1.0).contains(v)), "values outside [-1, 1]");
    }
    prop_assert!(f.get(f.len()).is_err());
    Ok(())
}

fn folder_mutations(cases: u32, name: &str) {
    let seeds = image_seeds();
    let dir = scratch_dir(name);
    let size_channels = (prop::sample::select(vec![1usize, 3, 8]), prop::sample::select(vec![1usize, 3]));
    let strategy = (0..seeds.len(), mutations(4), size_channels);
    fuzz(name, cases, strategy, |(k, muts, (size, channels))| {
        let (seed, ext) = &seeds[k];
        let bytes = apply(seed, &muts);
        put(&dir.join(format!("img.{ext}")), &bytes);
        let f = ImageFolder::open(&dir, size, channels).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(f.len(), 1);
        check_folder_image(&f, size, channels)?;
        std::fs::remove_file(dir.join(format!("img.{ext}"))).unwrap();
        Ok(())
    });
}

/// Valid PNGs of any size, extreme aspect ratios included (a 1×60000 PNG is a few hundred
/// bytes): each must load with the requested shape, without a huge intermediate image.
fn folder_valid_sizes(cases: u32, name: &str) {
    let dir = scratch_dir(name);
    let path = dir.join("img.png");
    let dims = prop_oneof![
        3 => (1u32..48, 1u32..48),
        1 => (1u32..4, 1_000u32..60_000),
        1 => (1_000u32..60_000, 1u32..4),
    ];
    let strategy = (dims, prop::sample::select(vec![1usize, 4, 16, 64, 256]), any::<bool>());
    fuzz(name, cases, strategy, |((w, h), size, rgb)| {
        let img = if rgb {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 5])))
        } else {
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x ^ y) as u8])))
        };
        put(&path, &encode(&img, ImageFormat::Png));
        for channels in [1, 3] {
            let f =
                ImageFolder::open(&dir, size, channels).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let out = f.get(0).map_err(|e| TestCaseError::fail(format!("{w}x{h} at size {size}: {e}")))?;
            prop_assert_eq!(out.len(), channels * size * size);
            fuzz_util::accepted();
            prop_assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
        Ok(())
    });
}

fn folder_random(cases: u32, name: &str) {
    let dir = scratch_dir(name);
    let strategy = (
        prop::sample::select(vec!["png", "jpg"]),
        prop::sample::select(vec![&b""[..], b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"]),
        prop::collection::vec(any::<u8>(), 0..256),
    );
    fuzz(name, cases, strategy, |(ext, magic, body)| {
        let path = dir.join(format!("r.{ext}"));
        put(&path, &[magic, &body[..]].concat());
        let f = ImageFolder::open(&dir, 4, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_folder_image(&f, 4, 3)?;
        std::fs::remove_file(&path).unwrap();
        Ok(())
    });
}

#[test]
fn fuzz_folder_mutations() {
    folder_mutations(15_000, "folder_mutations");
}
#[test]
#[ignore]
fn fuzz_folder_mutations_long() {
    folder_mutations(long_cases(), "folder_mutations_long");
}
#[test]
fn fuzz_folder_valid_sizes() {
    folder_valid_sizes(200, "folder_valid_sizes");
}
#[test]
#[ignore]
fn fuzz_folder_valid_sizes_long() {
    folder_valid_sizes(long_cases() / 100, "folder_valid_sizes_long");
}
#[test]
fn fuzz_folder_random() {
    folder_random(10_000, "folder_random");
}
#[test]
#[ignore]
fn fuzz_folder_random_long() {
    folder_random(long_cases(), "folder_random_long");
}

/// The mutation helpers themselves: numbers are found and replaced, runs inserted.
#[test]
fn mutation_helpers() {
    let s = b"{'shape': (12, 3), }".to_vec();
    assert_eq!(apply(&s, &[Mutation::Number { index: 0, which: 5 }]), b"{'shape': (4294967295, 3), }");
    assert_eq!(apply(&s, &[Mutation::ScaleNumber { index: 1, shift: 4 }]), b"{'shape': (12, 48), }");
    assert_eq!(apply(&s, &[Mutation::Truncate { pos: 3 }]), b"{'s");
    assert_eq!(apply(b"ab", &[Mutation::InsertRun { pos: 1, which: 7, len: 3 }]), b"a(((b");
}
