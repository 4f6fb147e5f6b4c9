//! Downloading standard data sets with SHA-256 checks.
//!
//! * MNIST: the four IDX `.gz` files from the PyTorch mirror of Yann LeCun's page.
//! * Fashion-MNIST: the four IDX `.gz` files from Zalando Research's S3 bucket.
//! * CIFAR-10: `cifar-10-binary.tar.gz` from the University of Toronto.
//!
//! Every download is written to `NAME.part`, hashed while it streams, compared with
//! the known SHA-256 (a mismatch deletes the partial file and is an error), then
//! unpacked and atomically renamed into `<cache>/<dataset>/`. The cache holds the
//! decompressed IDX files (whose SHA-256 is checked too) or the CIFAR-10 `*.bin`
//! batches; the loaders in [`crate::images`] read them from there.

use crate::images::{parse_cifar_batch, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Errors of downloading and importing data sets.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("download of {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("SHA-256 mismatch for {file}: expected {expected}, got {actual} (file removed)")]
    HashMismatch { file: String, expected: String, actual: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("missing file: {0}")]
    Missing(String),
    #[error("unknown data set `{0}` (expected mnist, fashion-mnist or cifar10)")]
    UnknownDataset(String),
}

type Result<T> = std::result::Result<T, FetchError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// A downloadable data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteDataset {
    Mnist,
    FashionMnist,
    Cifar10,
}

impl FromStr for RemoteDataset {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(Self::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(Self::FashionMnist),
            "cifar10" | "cifar-10" => Ok(Self::Cifar10),
            _ => Err(FetchError::UnknownDataset(s.to_string())),
        }
    }
}

/// One IDX file: served as `{raw}.gz`, stored as `raw`.
#[derive(Debug, Clone, Copy)]
pub struct IdxFile {
    /// Stored (decompressed) file name.
    pub raw: &'static str,
    /// SHA-256 of the `.gz` file as served.
    pub gz_sha256: &'static str,
    /// SHA-256 of the decompressed file.
    pub raw_sha256: &'static str,
}

const MNIST_FILES: [IdxFile; 4] = [
    IdxFile {
        raw: "train-images-idx3-ubyte",
        gz_sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        raw_sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    IdxFile {
        raw: "train-labels-idx1-ubyte",
        gz_sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        raw_sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    IdxFile {
        raw: "t10k-images-idx3-ubyte",
        gz_sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        raw_sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    IdxFile {
        raw: "t10k-labels-idx1-ubyte",
        gz_sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        raw_sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

const FASHION_FILES: [IdxFile; 4] = [
    IdxFile {
        raw: "train-images-idx3-ubyte",
        gz_sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        raw_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    IdxFile {
        raw: "train-labels-idx1-ubyte",
        gz_sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        raw_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    IdxFile {
        raw: "t10k-images-idx3-ubyte",
        gz_sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        raw_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    IdxFile {
        raw: "t10k-labels-idx1-ubyte",
        gz_sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        raw_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// The CIFAR-10 binary tarball and its SHA-256.
pub const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";
pub const CIFAR10_ARCHIVE_SHA256: &str = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
/// Files extracted from the tarball (its `cifar-10-batches-bin/` folder), besides the batches.
pub const CIFAR10_META: &str = "batches.meta.txt";

impl RemoteDataset {
    /// Sub-folder of the cache.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
        }
    }

    /// Standard public location (files are `BASE/NAME`).
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist",
            Self::FashionMnist => "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
            Self::Cifar10 => "https://www.cs.toronto.edu/~kriz",
        }
    }

    /// The IDX files (empty for CIFAR-10).
    pub fn idx_files(self) -> &'static [IdxFile] {
        match self {
            Self::Mnist => &MNIST_FILES,
            Self::FashionMnist => &FASHION_FILES,
            Self::Cifar10 => &[],
        }
    }

    /// Names of the files a complete cache folder holds.
    pub fn stored_files(self) -> Vec<&'static str> {
        match self {
            Self::Cifar10 => CIFAR_TRAIN_FILES.iter().copied().chain([CIFAR_TEST_FILE]).collect(),
            _ => self.idx_files().iter().map(|f| f.raw).collect(),
        }
    }
}

/// `$REDIFFUSE_DATA`, else `$HOME/.cache/rediffuse`, else `./.rediffuse-data`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("REDIFFUSE_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("rediffuse"),
        None => PathBuf::from(".rediffuse-data"),
    }
}

/// Lower-case hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Downloads into, and imports into, a cache folder.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache_dir: PathBuf,
    base_url: Option<String>,
    sha256: HashMap<String, String>,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher writing into `cache_dir` (see [`default_cache_dir`]).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            base_url: None,
            sha256: HashMap::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Serve every file from `BASE/NAME` instead of the standard location.
    pub fn with_base_url(mut self, base: impl Into<String>) -> Self {
        self.base_url = Some(base.into());
        self
    }

    /// Expect `hex` as the SHA-256 of the file named `file` (served name like
    /// `train-images-idx3-ubyte.gz` / `cifar-10-binary.tar.gz`, or stored name
    /// like `train-images-idx3-ubyte`) instead of the built-in value.
    pub fn with_sha256(mut self, file: impl Into<String>, hex: impl Into<String>) -> Self {
        self.sha256.insert(file.into(), hex.into().to_ascii_lowercase());
        self
    }

    /// Connect/read timeout of each request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// `<cache>/<dataset>`.
    pub fn dataset_dir(&self, ds: RemoteDataset) -> PathBuf {
        self.cache_dir.join(ds.dir_name())
    }

    /// Whether every stored file of `ds` is present.
    pub fn is_present(&self, ds: RemoteDataset) -> bool {
        let dir = self.dataset_dir(ds);
        ds.stored_files().iter().all(|f| dir.join(f).is_file())
    }

    fn expected(&self, name: &str, builtin: &str) -> String {
        self.sha256.get(name).cloned().unwrap_or_else(|| builtin.to_string())
    }

    fn url(&self, ds: RemoteDataset, name: &str) -> String {
        let base = self.base_url.as_deref().unwrap_or(ds.default_base_url());
        format!("{}/{name}", base.trim_end_matches('/'))
    }

    /// Download `ds` (skipping stored IDX files whose SHA-256 already matches)
    /// and return its cache folder.
    pub fn fetch(&self, ds: RemoteDataset) -> Result<PathBuf> {
        let dir = self.dataset_dir(ds);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        match ds {
            RemoteDataset::Cifar10 => {
                if self.is_present(ds) {
                    return Ok(dir);
                }
                let part = dir.join(format!("{CIFAR10_ARCHIVE}.part"));
                let expected = self.expected(CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_SHA256);
                self.download(&self.url(ds, CIFAR10_ARCHIVE), &part, CIFAR10_ARCHIVE, &expected)?;
                let r = extract_cifar(&part, &dir);
                let _ = std::fs::remove_file(&part);
                r?;
            }
            _ => {
                for f in ds.idx_files() {
                    let target = dir.join(f.raw);
                    let raw_expected = self.expected(f.raw, f.raw_sha256);
                    if target.is_file() && sha256_file(&target)? == raw_expected {
                        continue;
                    }
                    let gz_name = format!("{}.gz", f.raw);
                    let part = dir.join(format!("{gz_name}.part"));
                    self.download(
                        &self.url(ds, &gz_name),
                        &part,
                        &gz_name,
                        &self.expected(&gz_name, f.gz_sha256),
                    )?;
                    let r = std::fs::read(&part)
                        .map_err(io_err(&part))
                        .and_then(|b| gunzip_if_needed(b, &part))
                        .and_then(|raw| write_verified(&target, &raw, f.raw, &raw_expected));
                    let _ = std::fs::remove_file(&part);
                    r?;
                }
            }
        }
        Ok(dir)
    }

    /// Stream `url` into `part`, checking its SHA-256 (the file is removed on mismatch).
    fn download(&self, url: &str, part: &Path, name: &str, expected: &str) -> Result<()> {
        let agent =
            ureq::AgentBuilder::new().timeout_connect(self.timeout).timeout_read(self.timeout).build();
        let resp = agent
            .get(url)
            .call()
            .map_err(|e| FetchError::Http { url: url.to_string(), reason: e.to_string() })?;
        let mut reader = resp.into_reader();
        let mut out = File::create(part).map_err(io_err(part))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let result = (|| -> Result<()> {
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| FetchError::Http { url: url.to_string(), reason: e.to_string() })?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err(part))?;
            }
            out.sync_all().map_err(io_err(part))
        })();
        drop(out);
        if let Err(e) = result {
            let _ = std::fs::remove_file(part);
            return Err(e);
        }
        let actual = hex(&h.finalize());
        if actual != expected {
            let _ = std::fs::remove_file(part);
            return Err(FetchError::HashMismatch {
                file: name.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// Import already downloaded files from `path` into the cache and return its folder.
    ///
    /// * MNIST / Fashion-MNIST: `path` is a folder holding the four IDX files, each raw
    ///   or `.gz`; the decompressed content must match the known SHA-256.
    /// * CIFAR-10: `path` is `cifar-10-binary.tar.gz` (SHA-256 checked) or a folder with
    ///   the six `*.bin` batches (directly or in `cifar-10-batches-bin/`); loose batches
    ///   have no published hashes, so they are checked for their record layout instead.
    pub fn import_from(&self, ds: RemoteDataset, path: &Path) -> Result<PathBuf> {
        let dir = self.dataset_dir(ds);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        match ds {
            RemoteDataset::Cifar10 if path.is_file() => {
                let actual = sha256_file(path)?;
                let expected = self.expected(CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_SHA256);
                if actual != expected {
                    return Err(FetchError::HashMismatch {
                        file: path.display().to_string(),
                        expected,
                        actual,
                    });
                }
                extract_cifar(path, &dir)?;
            }
            RemoteDataset::Cifar10 => {
                let src = crate::images::cifar_batches_dir(path);
                for name in ds.stored_files() {
                    let p = src.join(name);
                    let bytes =
                        std::fs::read(&p).map_err(|_| FetchError::Missing(p.display().to_string()))?;
                    check_cifar_batch(&bytes, &p)?;
                    write_atomic(&dir.join(name), &bytes)?;
                }
            }
            _ => {
                if !path.is_dir() {
                    return Err(FetchError::Missing(format!("folder {}", path.display())));
                }
                for f in ds.idx_files() {
                    let src = [path.join(f.raw), path.join(format!("{}.gz", f.raw))]
                        .into_iter()
                        .find(|p| p.is_file())
                        .ok_or_else(|| {
                            FetchError::Missing(format!("{}[.gz] in {}", f.raw, path.display()))
                        })?;
                    let bytes = std::fs::read(&src).map_err(io_err(&src))?;
                    let raw = gunzip_if_needed(bytes, &src)?;
                    write_verified(&dir.join(f.raw), &raw, f.raw, &self.expected(f.raw, f.raw_sha256))?;
                }
            }
        }
        Ok(dir)
    }
}

fn gunzip_if_needed(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    crate::images::maybe_gunzip(bytes, path)
        .map_err(|e| FetchError::Invalid { path: path.to_path_buf(), reason: e.to_string() })
}

fn check_cifar_batch(bytes: &[u8], path: &Path) -> Result<()> {
    let (mut px, mut lb) = (Vec::new(), Vec::new());
    parse_cifar_batch(bytes, path, &mut px, &mut lb)
        .map_err(|e| FetchError::Invalid { path: path.to_path_buf(), reason: e.to_string() })
}

/// Write `bytes` to `target` via `target.part` + rename.
fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let part = target.with_file_name(format!(
        "{}.part",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("download")
    ));
    let r = (|| -> Result<()> {
        let mut f = File::create(&part).map_err(io_err(&part))?;
        f.write_all(bytes).map_err(io_err(&part))?;
        f.sync_all().map_err(io_err(&part))?;
        std::fs::rename(&part, target).map_err(io_err(target))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    r
}

/// Check the SHA-256 of `bytes`, then write them atomically to `target`.
fn write_verified(target: &Path, bytes: &[u8], name: &str, expected: &str) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual != expected {
        return Err(FetchError::HashMismatch {
            file: name.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    write_atomic(target, bytes)
}

/// Extract the batch files (and `batches.meta.txt`) of a CIFAR-10 tarball into `dir`.
fn extract_cifar(archive: &Path, dir: &Path) -> Result<()> {
    let f = File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(f));
    let wanted: Vec<&str> = RemoteDataset::Cifar10.stored_files().into_iter().chain([CIFAR10_META]).collect();
    let mut found = Vec::new();
    let invalid = |reason: String| FetchError::Invalid { path: archive.to_path_buf(), reason };
    for entry in tar.entries().map_err(|e| invalid(e.to_string()))? {
        let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
        let path = entry.path().map_err(|e| invalid(e.to_string()))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if !wanted.contains(&name.as_str()) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| invalid(e.to_string()))?;
        if name != CIFAR10_META {
            check_cifar_batch(&bytes, &dir.join(&name))?;
        }
        write_atomic(&dir.join(&name), &bytes)?;
        found.push(name);
    }
    for name in RemoteDataset::Cifar10.stored_files() {
        if !found.iter().any(|f| f == name) {
            return Err(FetchError::Missing(format!("{name} in {}", archive.display())));
        }
    }
    Ok(())
}
