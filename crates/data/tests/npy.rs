//! `.npy` reading/writing: round trips, files written by NumPy 2.4, malformed input.

use candle_core::{DType, Device, Tensor};
use rediffuse_data::npy::{encode_npy, parse_npy, read_npy, write_npy, write_npy_f64, write_npy_tensor};
use rediffuse_data::{read_npy_tensor, DataError, NpyArray, NpyDtype};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-npy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reads_numpy_written_files() {
    let a = read_npy(fixture("numpy_f4_2x3.npy")).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vec![1.5, -2.25, 3.0, 0.125, 1e-3, -7.0]);

    let a = read_npy(fixture("numpy_f8_4.npy")).unwrap();
    assert_eq!(a.shape, vec![4]);
    assert_eq!(a.data, vec![std::f32::consts::PI, -std::f32::consts::E, 1e10, 0.0]);

    let a = read_npy(fixture("numpy_u1_2x2x2.npy")).unwrap();
    assert_eq!(a.shape, vec![2, 2, 2]);
    assert_eq!(a.data, (0..8).map(|i| (i * 30) as f32).collect::<Vec<_>>());

    let a = read_npy(fixture("numpy_i8_3.npy")).unwrap();
    assert_eq!(a.data, vec![-5.0, 0.0, 123456789.0]);

    let a = read_npy(fixture("numpy_i4_big_endian.npy")).unwrap();
    assert_eq!(a.data, vec![1.0, -2.0, 3.0]);

    let a = read_npy(fixture("numpy_scalar.npy")).unwrap();
    assert_eq!((a.shape.len(), a.data.clone()), (0, vec![2.5]));

    let a = read_npy(fixture("numpy_empty_0x2.npy")).unwrap();
    assert_eq!(a.shape, vec![0, 2]);
    assert!(a.is_empty());
}

#[test]
fn reads_format_versions_2_and_3() {
    let v2 = std::fs::read(fixture("numpy_v2_f4.npy")).unwrap();
    assert_eq!(v2[6], 2);
    assert_eq!(read_npy(fixture("numpy_v2_f4.npy")).unwrap().data, vec![1.0, 2.0]);
    let v3 = std::fs::read(fixture("numpy_v3_f4.npy")).unwrap();
    assert_eq!(v3[6], 3);
    let a = read_npy(fixture("numpy_v3_f4.npy")).unwrap();
    assert_eq!((a.shape, a.data), (vec![2, 1], vec![4.0, 5.0]));
}

#[test]
fn writer_is_byte_identical_to_numpy() {
    let ours = encode_npy(&[2, 3], &[1.5, -2.25, 3.0, 0.125, 1e-3, -7.0], NpyDtype::F32).unwrap();
    assert_eq!(ours, std::fs::read(fixture("numpy_f4_2x3.npy")).unwrap());
    let ours = encode_npy(&[0, 2], &[], NpyDtype::F32).unwrap();
    assert_eq!(ours, std::fs::read(fixture("numpy_empty_0x2.npy")).unwrap());
    let ours = encode_npy(&[], &[2.5], NpyDtype::F32).unwrap();
    assert_eq!(ours, std::fs::read(fixture("numpy_scalar.npy")).unwrap());
}

#[test]
fn round_trips_f32_and_f64() {
    let dir = temp_dir("rt");
    let data: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) * 0.37).collect();
    let p = dir.join("a.npy");
    write_npy(&p, &[2, 3, 4], &data, NpyDtype::F32).unwrap();
    assert_eq!(read_npy(&p).unwrap(), NpyArray::new(vec![2, 3, 4], data.clone()).unwrap());

    write_npy(&p, &[24], &data, NpyDtype::F64).unwrap();
    let back = read_npy(&p).unwrap();
    assert_eq!(back.data, data, "f32 -> f64 -> f32 is exact");
    let len = std::fs::read(&p).unwrap().len();
    assert_eq!((len - 24 * 8) % 64, 0, "header padded to 64 bytes");

    let precise = [1.0 + 1e-12, -3.0];
    let q = dir.join("b.npy");
    write_npy_f64(&q, &[2], &precise, NpyDtype::F64).unwrap();
    let bytes = std::fs::read(&q).unwrap();
    let at = bytes.len() - 16;
    assert_eq!(f64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), 1.0 + 1e-12);

    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tensor_round_trip() {
    let dir = temp_dir("tensor");
    let dev = Device::Cpu;
    let t = Tensor::arange(0f32, 12.0, &dev).unwrap().reshape((3, 4)).unwrap();
    // A transposed (non-contiguous) view is written in logical C order.
    let tt = t.t().unwrap();
    let p = dir.join("t.npy");
    write_npy_tensor(&p, &tt, NpyDtype::F64).unwrap();
    let back = read_npy_tensor(&p, &dev).unwrap();
    assert_eq!(back.dims(), &[4, 3]);
    assert_eq!(back.dtype(), DType::F32);
    assert_eq!(back.to_vec2::<f32>().unwrap(), tt.to_vec2::<f32>().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typed_errors_on_bad_input() {
    let p = Path::new("mem.npy");
    assert!(matches!(read_npy("/nonexistent/dir/x.npy"), Err(DataError::NotFound(_))));
    assert!(matches!(parse_npy(b"PK\x03\x04 not numpy at all", p), Err(DataError::BadMagic(_))));
    assert!(matches!(parse_npy(b"", p), Err(DataError::Truncated { .. })));
    assert!(matches!(parse_npy(b"\x93NUM", p), Err(DataError::Truncated { .. })));

    let good = std::fs::read(fixture("numpy_f4_2x3.npy")).unwrap();
    assert!(matches!(parse_npy(&good[..9], p), Err(DataError::Truncated { .. })));
    assert!(matches!(parse_npy(&good[..40], p), Err(DataError::Truncated { .. })));
    match parse_npy(&good[..good.len() - 1], p) {
        Err(DataError::Truncated { what, .. }) => assert!(what.contains("data"), "{what}"),
        other => panic!("expected truncated data, got {other:?}"),
    }
    let mut extra = good.clone();
    extra.extend_from_slice(&[0u8; 8]);
    assert!(matches!(parse_npy(&extra, p), Err(DataError::SizeMismatch { expected: 6, actual: 8, .. })));

    let mut version = good.clone();
    version[6] = 9;
    assert!(matches!(parse_npy(&version, p), Err(DataError::BadHeader { .. })));

    let mut garbled = good.clone();
    garbled[12] = b'#';
    assert!(matches!(parse_npy(&garbled, p), Err(DataError::BadHeader { .. })));

    assert!(matches!(read_npy(fixture("numpy_fortran.npy")), Err(DataError::FortranOrder(_))));
    match read_npy(fixture("numpy_c8.npy")) {
        Err(DataError::UnsupportedDtype { dtype, .. }) => assert_eq!(dtype, "<c8"),
        other => panic!("expected unsupported dtype, got {other:?}"),
    }

    // Writer rejects inconsistent shapes and leaves no file.
    let dir = temp_dir("bad");
    let q = dir.join("x.npy");
    assert!(matches!(
        write_npy(&q, &[2, 2], &[1.0, 2.0, 3.0], NpyDtype::F32),
        Err(DataError::SizeMismatch { expected: 4, actual: 3, .. })
    ));
    assert!(!q.exists());
    assert!(matches!(NpyArray::new(vec![3], vec![1.0]), Err(DataError::SizeMismatch { .. })));
    // Writing into a missing directory is an error, not a panic.
    assert!(write_npy(dir.join("missing/x.npy"), &[1], &[1.0], NpyDtype::F32).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn overwrite_replaces_atomically() {
    let dir = temp_dir("ow");
    let p = dir.join("x.npy");
    write_npy(&p, &[1], &[1.0], NpyDtype::F32).unwrap();
    write_npy(&p, &[2], &[2.0, 3.0], NpyDtype::F32).unwrap();
    assert_eq!(read_npy(&p).unwrap().data, vec![2.0, 3.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}
