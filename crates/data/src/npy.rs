//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Layout (NumPy NEP 1, "A simple file format for NumPy arrays"): the magic
//! string `\x93NUMPY`, one byte each of major and minor version, the header
//! length (little-endian `u16` for version 1, `u32` for versions 2 and 3),
//! then an ASCII (UTF-8 for version 3) Python dict literal with the keys
//! `descr`, `fortran_order` and `shape`, padded with spaces and ended by a
//! newline, then the raw array data.
//!
//! Only C-order arrays of plain numeric dtypes are read; every value is
//! converted to `f32`. Files are written as version 1.0 (2.0 when the header
//! does not fit in 65535 bytes), 64-byte aligned, atomically (temporary file in
//! the destination directory, then rename).

use crate::error::{DataError, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
const SUPPORTED: &str = "f4, f8, u1, i1, i4, i8 (little- or big-endian)";

/// An n-dimensional array read from a `.npy` file, C order, as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NpyArray {
    /// Build an array, checking that `data.len()` equals the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(DataError::SizeMismatch { shape, expected, actual: data.len() });
        }
        Ok(Self { shape, data })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The array as an `f32` tensor of the same shape.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.data, self.shape.as_slice(), device)?)
    }
}

/// On-disk element type used when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NpyDtype {
    /// Little-endian 32-bit float, `'<f4'`.
    F32,
    /// Little-endian 64-bit float, `'<f8'`.
    F64,
}

impl NpyDtype {
    fn descr(self) -> &'static str {
        match self {
            NpyDtype::F32 => "<f4",
            NpyDtype::F64 => "<f8",
        }
    }
}

/// Element kinds this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    F4,
    F8,
    U1,
    I1,
    I4,
    I8,
}

impl ElemKind {
    fn size(self) -> usize {
        match self {
            ElemKind::U1 | ElemKind::I1 => 1,
            ElemKind::F4 | ElemKind::I4 => 4,
            ElemKind::F8 | ElemKind::I8 => 8,
        }
    }
}

/// Parsed dtype: kind and whether the bytes are big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtype {
    kind: ElemKind,
    big_endian: bool,
}

fn parse_descr(descr: &str, path: &Path) -> Result<Dtype> {
    let unsupported = || DataError::UnsupportedDtype {
        path: path.to_path_buf(),
        dtype: descr.to_string(),
        supported: SUPPORTED,
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let rest = chars.as_str();
    let kind = match rest {
        "f4" => ElemKind::F4,
        "f8" => ElemKind::F8,
        "u1" => ElemKind::U1,
        "i1" => ElemKind::I1,
        "i4" => ElemKind::I4,
        "i8" => ElemKind::I8,
        _ => return Err(unsupported()),
    };
    let big_endian = match order {
        '<' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        '|' if kind.size() == 1 => false,
        _ => return Err(unsupported()),
    };
    Ok(Dtype { kind, big_endian })
}

/// A value of the Python literal subset used by `.npy` headers.
#[derive(Debug, Clone, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<PyValue>),
    List(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
}

/// Deepest nesting of brackets the header parser follows (NumPy writes depth 2: the dict and
/// the shape tuple). Deeper input is an error instead of a stack overflow.
const MAX_NESTING: usize = 32;

/// Recursive-descent parser for the header dict literal.
struct LiteralParser<'a> {
    s: &'a [u8],
    pos: usize,
    /// Brackets currently open.
    depth: usize,
}

impl<'a> LiteralParser<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(format!("expected `{}` at byte {}, found `{}`", c as char, self.pos, x as char)),
            None => Err(format!("expected `{}`, found end of header", c as char)),
        }
    }

    /// Items separated by commas (a trailing comma allowed) up to `close`.
    fn seq(&mut self, close: u8) -> std::result::Result<Vec<PyValue>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected `,` or `{}` at byte {}", close as char, self.pos)),
            }
        }
    }

    fn value(&mut self) -> std::result::Result<PyValue, String> {
        if matches!(self.peek(), Some(b'{' | b'(' | b'[')) {
            if self.depth >= MAX_NESTING {
                return Err(format!("brackets nested deeper than {MAX_NESTING} at byte {}", self.pos));
            }
            self.depth += 1;
            let v = self.value_inner();
            self.depth -= 1;
            return v;
        }
        self.value_inner()
    }

    fn value_inner(&mut self) -> std::result::Result<PyValue, String> {
        match self.peek() {
            None => Err("unexpected end of header".into()),
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(PyValue::Dict(entries));
                    }
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    entries.push((k, v));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.pos)),
                    }
                }
            }
            Some(b'(') => {
                self.pos += 1;
                Ok(PyValue::Tuple(self.seq(b')')?))
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(PyValue::List(self.seq(b']')?))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    self.pos += 1;
                }
                if self.pos >= self.s.len() {
                    return Err("unterminated string literal".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(PyValue::Str(text))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
                let v = digits.parse::<u64>().map_err(|e| format!("bad integer `{digits}`: {e}"))?;
                // Python 2 long suffix, written by old NumPy versions.
                if self.pos < self.s.len() && self.s[self.pos] == b'L' {
                    self.pos += 1;
                }
                Ok(PyValue::Int(v))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphanumeric() {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(PyValue::Bool(true)),
                    b"False" => Ok(PyValue::Bool(false)),
                    w => Err(format!("unexpected word `{}`", String::from_utf8_lossy(w))),
                }
            }
            Some(c) => Err(format!("unexpected character `{}` at byte {}", c as char, self.pos)),
        }
    }
}

/// Parsed header fields.
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
}

fn parse_header(text: &[u8], path: &Path) -> Result<Header> {
    let bad = |reason: String| DataError::BadHeader { path: path.to_path_buf(), reason };
    let mut p = LiteralParser { s: text, pos: 0, depth: 0 };
    let dict = p.value().map_err(bad)?;
    if p.peek().is_some() {
        return Err(bad(format!("trailing characters after the dict at byte {}", p.pos)));
    }
    let PyValue::Dict(entries) = dict else {
        return Err(bad("header is not a dict".into()));
    };
    let get =
        |key: &str| entries.iter().find(|(k, _)| matches!(k, PyValue::Str(s) if s == key)).map(|(_, v)| v);
    let descr = get("descr").ok_or_else(|| bad("missing key `descr`".into()))?;
    let fortran = get("fortran_order").ok_or_else(|| bad("missing key `fortran_order`".into()))?;
    let shape = get("shape").ok_or_else(|| bad("missing key `shape`".into()))?;
    let dtype = match descr {
        PyValue::Str(s) => parse_descr(s, path)?,
        other => {
            return Err(DataError::UnsupportedDtype {
                path: path.to_path_buf(),
                dtype: format!("{other:?}"),
                supported: SUPPORTED,
            })
        }
    };
    match fortran {
        PyValue::Bool(false) => {}
        PyValue::Bool(true) => return Err(DataError::FortranOrder(path.to_path_buf())),
        other => return Err(bad(format!("`fortran_order` is not a bool: {other:?}"))),
    }
    let PyValue::Tuple(dims) = shape else {
        return Err(bad(format!("`shape` is not a tuple: {shape:?}")));
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            PyValue::Int(v) => usize::try_from(*v).map_err(|_| bad(format!("dimension {v} too large"))),
            other => Err(bad(format!("shape entry is not an integer: {other:?}"))),
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok(Header { dtype, shape })
}

fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::invalid("shape", format!("element count of {shape:?} overflows usize")))
}

/// Parse the bytes of a `.npy` file; `path` is used in error messages only.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let truncated = |what: &str| DataError::Truncated { path: path.to_path_buf(), what: what.to_string() };
    if bytes.len() < MAGIC.len() {
        return if MAGIC.starts_with(bytes) { Err(truncated("magic string")) } else { bad_magic(path) };
    }
    if &bytes[..6] != MAGIC {
        return bad_magic(path);
    }
    if bytes.len() < 8 {
        return Err(truncated("format version"));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => {
            if bytes.len() < 10 {
                return Err(truncated("header length"));
            }
            (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
        }
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(truncated("header length"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => {
            return Err(DataError::BadHeader {
                path: path.to_path_buf(),
                reason: format!("unsupported format version {v}.{}", bytes[7]),
            })
        }
    };
    let header_end = header_start + header_len;
    if bytes.len() < header_end {
        return Err(truncated("header"));
    }
    let header_bytes = &bytes[header_start..header_end];
    if major < 3 && !header_bytes.is_ascii() {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: "non-ASCII characters in a version 1/2 header".into(),
        });
    }
    let header = parse_header(header_bytes, path)?;
    let count = element_count(&header.shape)?;
    let size = header.dtype.kind.size();
    let payload = &bytes[header_end..];
    let needed = count.checked_mul(size).ok_or_else(|| DataError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("byte size of shape {:?} overflows", header.shape),
    })?;
    if payload.len() < needed {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("data: need {needed} bytes for shape {:?}, found {}", header.shape, payload.len()),
        });
    }
    if payload.len() > needed {
        return Err(DataError::SizeMismatch {
            shape: header.shape,
            expected: count,
            actual: payload.len() / size,
        });
    }
    let data = decode(payload, header.dtype);
    Ok(NpyArray { shape: header.shape, data })
}

fn bad_magic<T>(path: &Path) -> Result<T> {
    Err(DataError::BadMagic(path.to_path_buf()))
}

fn decode(payload: &[u8], dtype: Dtype) -> Vec<f32> {
    let be = dtype.big_endian;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            payload
                .chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().expect("chunks_exact yields exact chunks");
                    (if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as f32
                })
                .collect()
        };
    }
    match dtype.kind {
        ElemKind::F4 => conv!(f32, 4),
        ElemKind::F8 => conv!(f64, 8),
        ElemKind::U1 => payload.iter().map(|&b| b as f32).collect(),
        ElemKind::I1 => payload.iter().map(|&b| b as i8 as f32).collect(),
        ElemKind::I4 => conv!(i32, 4),
        ElemKind::I8 => conv!(i64, 8),
    }
}

/// Read a `.npy` file into an `f32` array.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Read a `.npy` file as an `f32` tensor of the stored shape.
pub fn read_npy_tensor(path: impl AsRef<Path>, device: &Device) -> Result<Tensor> {
    read_npy(path)?.to_tensor(device)
}

/// The `.npy` header block (magic, version, length, padded dict) for `shape` and `descr`.
fn encode_header(shape: &[usize], descr: &str) -> Vec<u8> {
    let shape_txt = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Version 1 prefix is 10 bytes, version 2 is 12; pad so data starts on a 64-byte boundary.
    let (major, prefix) =
        if dict.len() + 1 + 10 + 63 <= u16::MAX as usize + 10 { (1u8, 10) } else { (2u8, 12) };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let header_len = total - prefix;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(major);
    out.push(0);
    if major == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// Encode a C-order array as `.npy` bytes with the on-disk dtype `dtype`.
pub fn encode_npy_f64(shape: &[usize], data: &[f64], dtype: NpyDtype) -> Result<Vec<u8>> {
    check_len(shape, data.len())?;
    let mut out = encode_header(shape, dtype.descr());
    match dtype {
        NpyDtype::F32 => data.iter().for_each(|&v| out.extend_from_slice(&(v as f32).to_le_bytes())),
        NpyDtype::F64 => data.iter().for_each(|&v| out.extend_from_slice(&v.to_le_bytes())),
    }
    Ok(out)
}

/// Encode a C-order `f32` array as `.npy` bytes with the on-disk dtype `dtype`.
pub fn encode_npy(shape: &[usize], data: &[f32], dtype: NpyDtype) -> Result<Vec<u8>> {
    check_len(shape, data.len())?;
    let mut out = encode_header(shape, dtype.descr());
    match dtype {
        NpyDtype::F32 => data.iter().for_each(|&v| out.extend_from_slice(&v.to_le_bytes())),
        NpyDtype::F64 => data.iter().for_each(|&v| out.extend_from_slice(&(v as f64).to_le_bytes())),
    }
    Ok(out)
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let expected = element_count(shape)?;
    if expected != len {
        return Err(DataError::SizeMismatch { shape: shape.to_vec(), expected, actual: len });
    }
    Ok(())
}

/// Write `f32` data of `shape` (C order) to `path` as `.npy`, atomically.
/// An existing file at `path` is replaced; the overwrite policy belongs to the caller.
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f32], dtype: NpyDtype) -> Result<()> {
    write_bytes_atomic(path, &encode_npy(shape, data, dtype)?)
}

/// Write `f64` data of `shape` (C order) to `path` as `.npy`, atomically.
pub fn write_npy_f64(path: impl AsRef<Path>, shape: &[usize], data: &[f64], dtype: NpyDtype) -> Result<()> {
    write_bytes_atomic(path, &encode_npy_f64(shape, data, dtype)?)
}

/// Write a tensor (any float or integer dtype, any layout) as `.npy`, atomically.
pub fn write_npy_tensor(path: impl AsRef<Path>, tensor: &Tensor, dtype: NpyDtype) -> Result<()> {
    let shape = tensor.dims().to_vec();
    let flat = tensor.flatten_all()?;
    match dtype {
        NpyDtype::F32 => write_npy(path, &shape, &flat.to_dtype(DType::F32)?.to_vec1::<f32>()?, dtype),
        NpyDtype::F64 => write_npy_f64(path, &shape, &flat.to_dtype(DType::F64)?.to_vec1::<f64>()?, dtype),
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: a temporary file in the same directory is
/// written and synced, then renamed over `path`. On failure the temporary file is removed
/// and `path` is left as it was.
pub fn write_bytes_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .ok_or_else(|| DataError::invalid("path", format!("`{}` has no file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp-{}-{unique}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        // Best effort: the temporary may not exist if creation itself failed.
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_parsable() {
        for shape in [vec![], vec![7], vec![2, 3, 4]] {
            let h = encode_header(&shape, "<f4");
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let parsed = parse_header(&h[10..], Path::new("x")).unwrap();
            assert_eq!(parsed.shape, shape);
            assert_eq!(parsed.dtype, Dtype { kind: ElemKind::F4, big_endian: false });
        }
    }

    #[test]
    fn large_header_uses_version_2() {
        let shape = vec![1usize; 30_000];
        let h = encode_header(&shape, "<f8");
        assert_eq!(h[6], 2);
        assert_eq!(h.len() % 64, 0);
        let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        assert_eq!(len + 12, h.len());
        assert_eq!(parse_header(&h[12..], Path::new("x")).unwrap().shape.len(), 30_000);
    }

    /// Regression (fuzzing): a header of 100 000 open brackets overflowed the stack of the
    /// recursive parser and aborted the process.
    #[test]
    fn deeply_nested_header_is_an_error() {
        for open in ["(", "[", "{"] {
            let text =
                format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}}}", open.repeat(100_000));
            let e = parse_header(text.as_bytes(), Path::new("x")).err().unwrap();
            assert!(
                matches!(&e, DataError::BadHeader { reason, .. } if reason.contains("nested deeper")),
                "{e}"
            );
        }
        // depth 2 (dict, tuple) and a little more still parse
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': [[[(1,)]]]}";
        assert_eq!(parse_header(ok.as_bytes(), Path::new("x")).unwrap().shape, vec![1]);
    }

    #[test]
    fn descr_variants() {
        let p = Path::new("x");
        assert_eq!(parse_descr("|u1", p).unwrap().kind, ElemKind::U1);
        assert!(parse_descr(">f8", p).unwrap().big_endian);
        assert!(matches!(parse_descr("|f4", p), Err(DataError::UnsupportedDtype { .. })));
        assert!(matches!(parse_descr("<c8", p), Err(DataError::UnsupportedDtype { .. })));
        assert!(matches!(parse_descr("", p), Err(DataError::UnsupportedDtype { .. })));
    }
}
