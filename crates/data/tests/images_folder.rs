//! Image folder loading: mixed sizes, resize + centre-crop, RGB/grey, errors.

use image::{Rgb, RgbImage};
use rediffuse_data::images::{ImageDataset, ImageError, ImageFolder, ImageSpec, Split};
use std::path::PathBuf;

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-folder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mixed_sizes_resize_and_crop() {
    let dir = tmp_dir("mixed");
    // a: 64×32 (w×h), black left and right quarters, white 32×32 centre
    let a = RgbImage::from_fn(64, 32, |x, _| if (16..48).contains(&x) { Rgb([255; 3]) } else { Rgb([0; 3]) });
    a.save(dir.join("a.png")).unwrap();
    // b: 10×30 constant colour (255, 0, 51), as JPEG-free PNG for exact values
    RgbImage::from_pixel(10, 30, Rgb([255, 0, 51])).save(dir.join("b.png")).unwrap();
    // c: 7×7 grey JPEG (lossy: check approximately), in a sub-folder
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    image::GrayImage::from_pixel(7, 7, image::Luma([200])).save(dir.join("sub").join("c.jpg")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();

    let f = ImageFolder::open(&dir, 16, 3).unwrap();
    assert_eq!(f.len(), 3);
    assert_eq!(f.image_shape(), [3, 16, 16]);
    let names: Vec<_> =
        f.files().iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["a.png", "b.png", "c.jpg"]);

    // a → 32×16, centre crop x 8..24 = the white part (edges blurred by the filter)
    let img_a = f.get(0).unwrap();
    assert_eq!(img_a.len(), 3 * 256);
    assert_eq!(img_a[8 * 16 + 8], 1.0);
    assert_eq!(img_a[2 * 256 + 8 * 16 + 7], 1.0);
    let mean: f32 = img_a.iter().sum::<f32>() / img_a.len() as f32;
    assert!(mean > 0.8, "mean {mean}");

    // b: constant colour survives resize + crop exactly
    let img_b = f.get(1).unwrap();
    assert!(img_b[..256].iter().all(|&v| v == 1.0));
    assert!(img_b[256..512].iter().all(|&v| v == -1.0));
    assert!(img_b[512..].iter().all(|&v| (v - (51.0 / 127.5 - 1.0)).abs() < 1e-6));

    // c: upsampled grey → 3 equal channels ≈ 200/127.5 − 1
    let img_c = f.get(2).unwrap();
    let want = 200.0 / 127.5 - 1.0;
    assert!(img_c.iter().all(|&v| (v - want).abs() < 0.05), "{:?}", &img_c[..4]);

    // grey mode: 1 channel
    let g = ImageFolder::open(&dir, 8, 1).unwrap();
    assert_eq!(g.image_shape(), [1, 8, 8]);
    let gb = g.get(1).unwrap();
    assert_eq!(gb.len(), 64);
    assert!(gb.iter().all(|&v| v == gb[0]) && gb[0] > -1.0 && gb[0] < 0.0);

    // through the spec API
    let spec = ImageSpec::Folder { path: dir.clone(), size: 16, channels: 3 };
    let batch = spec.load(None, 0, Split::Train).unwrap();
    assert_eq!(batch.images.dims(), &[3, 3, 16, 16]);
    assert!(batch.labels.is_none());
    assert!(matches!(spec.open(Split::Test), Err(ImageError::NoSplit { .. })));
}

#[test]
fn folder_errors() {
    let empty = tmp_dir("empty");
    assert!(matches!(ImageFolder::open(&empty, 8, 3), Err(ImageError::Missing(_))));
    assert!(ImageFolder::open(&empty.join("nope"), 8, 3).is_err());
    let dir = tmp_dir("broken");
    std::fs::write(dir.join("broken.png"), b"definitely not a png").unwrap();
    assert!(matches!(ImageFolder::open(&dir, 8, 2), Err(ImageError::InvalidArgument { .. })));
    assert!(matches!(ImageFolder::open(&dir, 0, 3), Err(ImageError::InvalidArgument { .. })));
    let f = ImageFolder::open(&dir, 8, 3).unwrap();
    assert!(matches!(f.get(0), Err(ImageError::Decode { .. })));
    assert!(matches!(f.get(1), Err(ImageError::OutOfRange { .. })));
}
