//! Loader tests: IDX (raw, gz, errors), CIFAR-10 record layout, digits, batcher, specs.

use candle_core::Device;
use flate2::write::GzEncoder;
use flate2::Compression;
use rediffuse_data::images::*;
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-img-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_header_parsing() {
    let p = Path::new("hand.idx");
    let data: Vec<u8> = (0..12).collect();
    let a = parse_idx(&idx_bytes(8, &[2, 2, 3], &data), p).unwrap();
    assert_eq!(a.dims, vec![2, 2, 3]);
    assert_eq!(a.data, data);
    // bad magic
    let mut bad = idx_bytes(8, &[2], &[1, 2]);
    bad[0] = 1;
    assert!(matches!(parse_idx(&bad, p), Err(ImageError::BadMagic { .. })));
    assert!(matches!(parse_idx(&[0, 0, 8, 0], p), Err(ImageError::BadMagic { .. })));
    // unsupported element type (0x0D = float)
    assert!(matches!(
        parse_idx(&idx_bytes(0x0d, &[1], &[0, 0, 0, 0]), p),
        Err(ImageError::UnsupportedIdxType { code: 0x0d, .. })
    ));
    // truncated data: 16-byte header + 12 expected, 11 present
    match parse_idx(&idx_bytes(8, &[2, 2, 3], &data[..11]), p) {
        Err(ImageError::Truncated { expected: 28, found: 27, .. }) => {}
        other => panic!("expected Truncated 28/27, got {other:?}"),
    }
    // truncated header
    assert!(matches!(parse_idx(&[0, 0, 8, 3, 0, 0], p), Err(ImageError::Truncated { expected: 16, .. })));
    assert!(matches!(parse_idx(&[0, 0], p), Err(ImageError::Truncated { .. })));
    // trailing bytes
    assert!(matches!(parse_idx(&idx_bytes(8, &[1], &[5, 6]), p), Err(ImageError::Malformed { .. })));
}

fn write_mnist(dir: &Path, prefix: &str, gzip: bool) {
    // two 2×3 images: first 0..=5 ·51 (0, 51, ..., 255), second all 255; labels 7, 3
    let px: Vec<u8> = (0..6u8).map(|i| i * 51).chain([255; 6]).collect();
    let files = [
        (format!("{prefix}-images-idx3-ubyte"), idx_bytes(8, &[2, 2, 3], &px)),
        (format!("{prefix}-labels-idx1-ubyte"), idx_bytes(8, &[2], &[7, 3])),
    ];
    for (name, bytes) in files {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn mnist_dir_raw_and_gz_agree() {
    let raw = tmp_dir("mnist-raw");
    let gzd = tmp_dir("mnist-gz");
    write_mnist(&raw, "train", false);
    write_mnist(&gzd, "train", true);
    write_mnist(&gzd, "t10k", true);
    let a = load_mnist_dir(&raw, true).unwrap();
    let b = load_mnist_dir(&gzd, true).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a.image_shape(), [1, 2, 3]);
    let img0 = a.get(0).unwrap();
    let want: Vec<f32> = (0..6).map(|i| 2.0 * (i * 51) as f32 / 255.0 - 1.0).collect();
    assert_eq!(img0, want);
    assert_eq!(img0[0], -1.0);
    assert_eq!(img0[5], 1.0);
    assert_eq!(a.get(1).unwrap(), vec![1.0; 6]);
    assert_eq!((a.label(0), a.label(1), a.num_classes()), (Some(7), Some(3), Some(10)));
    assert_eq!(b.get(0).unwrap(), img0);
    assert_eq!(b.labels(), a.labels());
    assert_eq!(load_mnist_dir(&gzd, false).unwrap().len(), 2);
    // test split missing in the raw dir
    assert!(matches!(load_mnist_dir(&raw, false), Err(ImageError::Missing(_))));
    // label count mismatch
    std::fs::write(raw.join("train-labels-idx1-ubyte"), idx_bytes(8, &[3], &[1, 2, 3])).unwrap();
    assert!(matches!(load_mnist_dir(&raw, true), Err(ImageError::Malformed { .. })));
    // truncated gz content
    let full = idx_bytes(8, &[2, 2, 3], &[0; 12]);
    std::fs::write(gzd.join("train-images-idx3-ubyte.gz"), gz(&full[..20])).unwrap();
    assert!(matches!(load_mnist_dir(&gzd, true), Err(ImageError::Truncated { .. })));
}

fn cifar_record(label: u8, r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut rec = vec![label];
    rec.extend([r; 1024]);
    rec.extend([g; 1024]);
    rec.extend([b; 1024]);
    rec
}

#[test]
fn cifar_record_layout() {
    let dir = tmp_dir("cifar");
    let mut first = cifar_record(3, 10, 20, 30);
    first[1 + 32 + 2] = 255; // red plane, row 1, column 2
    first[1 + 2048 + 31 * 32 + 31] = 0; // blue plane, last pixel
    let file: Vec<u8> = first.iter().copied().chain(cifar_record(7, 0, 0, 0)).collect();
    assert_eq!(file.len(), 2 * CIFAR_RECORD);
    for name in CIFAR_TRAIN_FILES.iter().chain([&CIFAR_TEST_FILE]) {
        std::fs::write(dir.join(name), &file).unwrap();
    }
    let train = load_cifar10_dir(&dir, true).unwrap();
    let test = load_cifar10_dir(&dir, false).unwrap();
    assert_eq!((train.len(), test.len()), (10, 2));
    assert_eq!(test.image_shape(), [3, 32, 32]);
    assert_eq!((test.label(0), test.label(1)), (Some(3), Some(7)));
    let img = test.get(0).unwrap();
    let v = |c: usize, y: usize, x: usize| img[c * 1024 + y * 32 + x];
    assert_eq!(v(0, 1, 2), 1.0);
    assert_eq!(v(0, 0, 0), 2.0 * 10.0 / 255.0 - 1.0);
    assert_eq!(v(1, 5, 5), 2.0 * 20.0 / 255.0 - 1.0);
    assert_eq!(v(2, 0, 0), 2.0 * 30.0 / 255.0 - 1.0);
    assert_eq!(v(2, 31, 31), -1.0);
    assert!(test.get(1).unwrap().iter().all(|&x| x == -1.0));
    // nested cifar-10-batches-bin folder is found
    let outer = tmp_dir("cifar-outer");
    std::fs::create_dir_all(outer.join("cifar-10-batches-bin")).unwrap();
    std::fs::write(outer.join("cifar-10-batches-bin").join(CIFAR_TEST_FILE), &file).unwrap();
    assert_eq!(load_cifar10_dir(&outer, false).unwrap().len(), 2);
    // truncated record, bad label
    std::fs::write(dir.join(CIFAR_TEST_FILE), &file[..file.len() - 5]).unwrap();
    assert!(matches!(load_cifar10_dir(&dir, false), Err(ImageError::Truncated { .. })));
    let mut bad = file.clone();
    bad[CIFAR_RECORD] = 10;
    std::fs::write(dir.join(CIFAR_TEST_FILE), &bad).unwrap();
    assert!(matches!(load_cifar10_dir(&dir, false), Err(ImageError::Malformed { .. })));
}

#[test]
fn digits_count_range_and_first_image() {
    let d = load_digits(8).unwrap();
    assert_eq!(d.len(), DIGITS_COUNT);
    assert_eq!(d.len(), 1797);
    assert_eq!(d.image_shape(), [1, 8, 8]);
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    let mut counts = [0usize; 10];
    for i in 0..d.len() {
        for v in d.get(i).unwrap() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        counts[d.label(i).unwrap() as usize] += 1;
    }
    assert_eq!((lo, hi), (-1.0, 1.0));
    // class sizes of the UCI digits as shipped by scikit-learn
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // first record: "0,0,5,13,9,1,0,0,..." label 0; pixel v → v/8 − 1
    let first = d.get(0).unwrap();
    assert_eq!(&first[..8], &[-1.0, -1.0, -0.375, 0.625, 0.125, -0.875, -1.0, -1.0]);
    assert_eq!(d.label(0), Some(0));
    // 16×16: corners copy the 8×8 corners; (1,1) = ¾·¾ p00 + ¾·¼ (p01 + p10) + ¼·¼ p11
    let u = load_digits(16).unwrap();
    assert_eq!(u.image_shape(), [1, 16, 16]);
    assert_eq!(u.len(), 1797);
    let up = u.get(0).unwrap();
    assert_eq!(up[0], first[0]);
    assert_eq!(up[255], first[63]);
    let want = 0.5625 * first[0] + 0.1875 * (first[1] + first[8]) + 0.0625 * first[9];
    assert!((up[17] - want).abs() < 1e-6);
    assert!(up.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(load_digits(4).is_err());
}

#[test]
fn batcher_is_seeded_covers_epochs_and_flips() {
    // 10 images 1×1×2: image i = [a_i, -a_i]; labels i
    let data: Vec<f32> = (0..10).flat_map(|i| [i as f32 / 10.0, -(i as f32) / 10.0]).collect();
    let set = ImageSet::from_f32([1, 1, 2], data, Some((0..10).collect()), Some(10)).unwrap();
    let dev = Device::Cpu;
    let epoch_labels = |seed: u64| -> Vec<Vec<u32>> {
        let mut b = Batcher::new(&set, 4, seed, false).unwrap();
        (0..6).map(|_| b.next_batch(&dev).unwrap().labels.unwrap().to_vec1::<u32>().unwrap()).collect()
    };
    let a = epoch_labels(1);
    assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2, 4, 4, 2]);
    let mut e0: Vec<u32> = a[..3].concat();
    let e1: Vec<u32> = a[3..].concat();
    assert_ne!(a[..3].concat(), e1, "epochs reshuffle");
    e0.sort();
    assert_eq!(e0, (0..10).collect::<Vec<_>>());
    assert_eq!(a, epoch_labels(1));
    assert_ne!(a, epoch_labels(2));
    // flips: a flipped image is [-a, a]
    let data: Vec<f32> = (0..200).flat_map(|_| [0.5f32, -0.5]).collect();
    let set = ImageSet::from_f32([1, 1, 2], data, None, None).unwrap();
    let mut b = Batcher::new(&set, 200, 3, true).unwrap();
    let batch = b.next_batch(&dev).unwrap();
    assert!(batch.labels.is_none());
    let v: Vec<f32> = batch.images.flatten_all().unwrap().to_vec1().unwrap();
    let flipped = v.chunks(2).filter(|p| p == &[-0.5, 0.5]).count();
    let kept = v.chunks(2).filter(|p| p == &[0.5, -0.5]).count();
    assert_eq!(flipped + kept, 200);
    assert!((70..=130).contains(&flipped), "flipped {flipped}");
    assert!(Batcher::new(&set, 0, 0, false).is_err());
}

#[test]
fn hflip_reverses_rows() {
    let mut img: Vec<f32> = (0..12).map(|i| i as f32).collect(); // 2 channels × 2 × 3
    hflip_chw(&mut img, [2, 2, 3]);
    assert_eq!(img, vec![2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
}

#[test]
fn specs_parse_and_load() {
    assert_eq!("digits".parse::<ImageSpec>().unwrap(), ImageSpec::Digits { size: 8 });
    assert_eq!("digits:16".parse::<ImageSpec>().unwrap(), ImageSpec::Digits { size: 16 });
    assert_eq!("digits16".parse::<ImageSpec>().unwrap(), ImageSpec::Digits { size: 16 });
    assert_eq!("mnist:/d/m".parse::<ImageSpec>().unwrap(), ImageSpec::Mnist { dir: "/d/m".into() });
    assert_eq!(
        "fashion-mnist:/d/f".parse::<ImageSpec>().unwrap(),
        ImageSpec::FashionMnist { dir: "/d/f".into() }
    );
    assert_eq!("cifar10:/c".parse::<ImageSpec>().unwrap(), ImageSpec::Cifar10 { dir: "/c".into() });
    match "mnist".parse::<ImageSpec>().unwrap() {
        ImageSpec::Mnist { dir } => assert!(dir.ends_with("mnist")),
        other => panic!("{other:?}"),
    }
    let folder = tmp_dir("spec-folder");
    assert_eq!(
        folder.to_str().unwrap().parse::<ImageSpec>().unwrap(),
        ImageSpec::Folder { path: folder.clone(), size: DEFAULT_FOLDER_SIZE, channels: 3 }
    );
    assert!("no-such-set".parse::<ImageSpec>().is_err());
    assert!("digits:x".parse::<ImageSpec>().is_err());

    let spec = ImageSpec::Digits { size: 8 };
    let a = spec.load(Some(10), 5, Split::Train).unwrap();
    assert_eq!(a.images.dims(), &[10, 1, 8, 8]);
    assert_eq!(a.labels.as_ref().unwrap().dims(), &[10]);
    let b = spec.load(Some(10), 5, Split::Train).unwrap();
    let c = spec.load(Some(10), 6, Split::Train).unwrap();
    let diff = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
        (x - y).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
    };
    assert_eq!(diff(&a.images, &b.images), 0.0);
    assert!(diff(&a.images, &c.images) > 0.0);
    assert_eq!(spec.load(None, 0, Split::Train).unwrap().images.dims(), &[1797, 1, 8, 8]);
    assert!(spec.load(Some(1798), 0, Split::Train).is_err());
    assert!(matches!(spec.open(Split::Test), Err(ImageError::NoSplit { .. })));
    assert_eq!(load_images("digits:16", Some(3), 0).unwrap().dims(), &[3, 1, 16, 16]);
    // MNIST spec from a hand-made folder
    let m = tmp_dir("spec-mnist");
    write_mnist(&m, "train", true);
    let t = load_images(&format!("mnist:{}", m.display()), None, 0).unwrap();
    assert_eq!(t.dims(), &[2, 1, 2, 3]);
}

#[test]
fn image_set_validation() {
    assert!(ImageSet::from_f32([1, 2, 2], vec![0.0; 7], None, None).is_err());
    assert!(ImageSet::from_f32([1, 1, 1], vec![1.5], None, None).is_err());
    assert!(ImageSet::from_u8([1, 1, 1], vec![0, 1], 255, Some(vec![0]), Some(10)).is_err());
    assert!(ImageSet::from_u8([1, 1, 1], vec![0], 255, Some(vec![10]), Some(10)).is_err());
    let s = ImageSet::from_u8([1, 1, 1], vec![0, 255], 255, None, None).unwrap();
    assert!(matches!(s.get(2), Err(ImageError::OutOfRange { index: 2, len: 2 })));
    assert_eq!(s.select(&[1, 0]).unwrap().get(0).unwrap(), vec![1.0]);
}

/// Manual check against real files: `REDIFFUSE_TEST_MNIST=/path/to/idx/files cargo test … -- --ignored`.
#[test]
#[ignore]
fn real_mnist_layout_from_env() {
    let dir = PathBuf::from(std::env::var("REDIFFUSE_TEST_MNIST").expect("set REDIFFUSE_TEST_MNIST"));
    let train = load_mnist_dir(&dir, true).unwrap();
    let test = load_mnist_dir(&dir, false).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.image_shape(), [1, 28, 28]);
    let mut counts = [0usize; 10];
    for i in 0..train.len() {
        counts[train.label(i).unwrap() as usize] += 1;
    }
    println!("train label counts {counts:?}");
    let mean: f32 = train.get(0).unwrap().iter().sum::<f32>() / 784.0;
    println!("first image mean {mean}, label {:?}", train.label(0));
}
