//! Crash-safe file writing: temp file in the same directory, fsync, rename.

use crate::error::{Result, TrainError};
use candle_core::Tensor;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// fsync a directory so that renames inside it are durable (no-op where unsupported).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|f| f.sync_all()).map_err(|e| TrainError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| TrainError::io(path, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replace `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(TrainError::io(path, e));
    }
    sync_dir(parent(path))
}

/// Write a safetensors file and fsync it (no rename: for files inside a directory that is
/// itself renamed into place).
pub fn save_safetensors_synced(map: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(map, path)
        .map_err(|e| TrainError::io(path, std::io::Error::other(e.to_string())))?;
    sync_file(path)
}

/// Replace `path` with a safetensors file atomically.
pub fn save_safetensors_atomic(map: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = tmp_path(path);
    if let Err(e) = save_safetensors_synced(map, &tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
    sync_dir(parent(path))
}

/// Move the complete directory `staged` to `dst`, replacing any previous `dst`.
/// The old directory is first renamed to `backup`, so at every instant either `dst` or
/// `backup` is a complete directory; `backup` is removed at the end.
pub fn replace_dir(staged: &Path, dst: &Path, backup: &Path) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| TrainError::io(p, e)
    };
    if dst.exists() {
        if backup.exists() {
            fs::remove_dir_all(backup).map_err(io(backup))?;
        }
        fs::rename(dst, backup).map_err(io(dst))?;
    }
    fs::rename(staged, dst).map_err(io(dst))?;
    sync_dir(parent(dst))?;
    if backup.exists() {
        fs::remove_dir_all(backup).map_err(io(backup))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("rediffuse-fsutil-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // directory swap
        let (staged, dst, bak) = (dir.join("s"), dir.join("d"), dir.join("d.old"));
        for v in [b"1", b"2"] {
            fs::create_dir_all(&staged).unwrap();
            fs::write(staged.join("f"), v).unwrap();
            replace_dir(&staged, &dst, &bak).unwrap();
            assert_eq!(fs::read(dst.join("f")).unwrap(), v);
            assert!(!staged.exists() && !bak.exists());
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
