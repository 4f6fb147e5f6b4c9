//! Parsing and loading data specifications.

use candle_core::Device;
use rediffuse_data::npy::write_npy;
use rediffuse_data::{DataError, DataSpec, NpyDtype, Toy2d};
use std::path::PathBuf;

#[test]
fn parse_forms() {
    assert_eq!(DataSpec::parse("moons").unwrap(), DataSpec::Toy(Toy2d::Moons));
    assert_eq!(DataSpec::parse(" swiss-roll ").unwrap(), DataSpec::Toy(Toy2d::SwissRoll));
    assert_eq!(DataSpec::parse("data/x.NPY").unwrap(), DataSpec::Npy(PathBuf::from("data/x.NPY")));
    match DataSpec::parse("cifar-11") {
        Err(e @ DataError::UnknownSource { .. }) => {
            let m = e.to_string();
            assert!(m.contains("8gaussians") && m.contains(".npy"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let spec: DataSpec = serde_json::from_str("\"circles\"").unwrap();
    assert_eq!(spec, DataSpec::Toy(Toy2d::Circles));
    assert_eq!(serde_json::to_string(&DataSpec::Npy("a/b.npy".into())).unwrap(), "\"a/b.npy\"");
    assert!(serde_json::from_str::<DataSpec>("\"nope\"").is_err());
}

#[test]
fn load_toy_and_npy() {
    let dev = Device::Cpu;
    let t = DataSpec::Toy(Toy2d::Circles).load(None, 1, &dev).unwrap();
    assert_eq!(t.dims(), &[10_000, 2]);
    let t5 = DataSpec::Toy(Toy2d::Circles).load(Some(5), 1, &dev).unwrap();
    assert_eq!(t5.to_vec2::<f32>().unwrap(), t.narrow(0, 0, 5).unwrap().to_vec2::<f32>().unwrap());

    let dir = std::env::temp_dir().join(format!("rediffuse-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("d.npy");
    let data: Vec<f32> = (0..30).map(|i| i as f32).collect();
    write_npy(&p, &[5, 3, 2], &data, NpyDtype::F32).unwrap();
    let spec = DataSpec::parse(p.to_str().unwrap()).unwrap();
    let all = spec.load(None, 0, &dev).unwrap();
    assert_eq!(all.dims(), &[5, 3, 2]);
    let two = spec.load(Some(2), 0, &dev).unwrap();
    assert_eq!(two.dims(), &[2, 3, 2]);
    assert_eq!(two.flatten_all().unwrap().to_vec1::<f32>().unwrap(), data[..12].to_vec());
    assert!(matches!(
        spec.load(Some(6), 0, &dev),
        Err(DataError::NotEnoughRows { requested: 6, available: 5, .. })
    ));
    assert!(matches!(spec.load(Some(0), 0, &dev), Err(DataError::InvalidParameter { .. })));

    let scalar = dir.join("s.npy");
    write_npy(&scalar, &[], &[1.0], NpyDtype::F32).unwrap();
    assert!(matches!(DataSpec::Npy(scalar).load(None, 0, &dev), Err(DataError::InvalidParameter { .. })));
    assert!(matches!(
        DataSpec::Npy(dir.join("missing.npy")).load(None, 0, &dev),
        Err(DataError::NotFound(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
