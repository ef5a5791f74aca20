//! The core metadata of a stored wheel (PEP 658: served at `{file_url}.metadata`), read with
//! a few ranged reads: the end of the file, the central directory, the `METADATA` entry.
//!
//! The zip format is APPNOTE.TXT (PKWARE's ".ZIP File Format Specification", 6.3.x), parsed
//! by hand here rather than with the `zip` crate: that crate reads through a synchronous
//! `Read + Seek` over the whole archive, while a stored wheel is reached by async ranged reads
//! of object storage, and only three ranges of it are needed. Every size the archive claims is
//! checked against the file size and the limits before anything is read or allocated.

use async_trait::async_trait;
use std::fmt;

/// Random access to a stored file.
#[async_trait(?Send)]
pub trait RangeSource {
    /// `len` bytes from `offset`; fewer only at the end of the file.
    async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelLimits {
    /// The central directory is read whole: this bounds that read.
    pub max_central_directory: u64,
    /// Bounds the `METADATA` entry, compressed and inflated (a zip bomb stops here).
    pub max_metadata: u64,
}

impl Default for WheelLimits {
    /// A wheel of 50 000 files has a central directory of a few MB; the biggest `METADATA`
    /// files on PyPI (long descriptions) are a few hundred KB.
    fn default() -> Self {
        WheelLimits { max_central_directory: 8 * 1024 * 1024, max_metadata: 4 * 1024 * 1024 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WheelError {
    /// The source could not be read.
    Read(String),
    /// Not a zip archive, or a damaged or contradictory one.
    Invalid(String),
    /// A part of the archive exceeds `WheelLimits`.
    TooLarge(&'static str),
    /// A valid zip this reader does not handle (multi-disk, encrypted, another compression).
    Unsupported(String),
}

impl fmt::Display for WheelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WheelError::Read(e) => write!(f, "reading the wheel: {e}"),
            WheelError::Invalid(why) => write!(f, "invalid wheel: {why}"),
            WheelError::TooLarge(what) => write!(f, "invalid wheel: {what} too large"),
            WheelError::Unsupported(what) => write!(f, "unsupported wheel: {what}"),
        }
    }
}

impl std::error::Error for WheelError {}

fn invalid(why: impl Into<String>) -> WheelError {
    WheelError::Invalid(why.into())
}

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const EOCD_LEN: u64 = 22;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: u64 = 20;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: u64 = 56;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const LOCAL_HEADER_LEN: u64 = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const MAX_COMMENT: u64 = 0xffff;

/// `{name}-{version}.dist-info/METADATA` of the wheel (size `size`), inflated and checked
/// against its CRC-32; `None` when the wheel has no `.dist-info` directory or no `METADATA` in
/// it. The wheel spec allows exactly one top-level `.dist-info` directory: more is an error.
pub async fn core_metadata(src: &dyn RangeSource, size: u64, limits: &WheelLimits) -> Result<Option<Vec<u8>>, WheelError> {
    let directory = central_directory(src, size, limits).await?;
    let Some(entry) = metadata_entry(&directory)? else {
        return Ok(None);
    };
    read_entry(src, &entry, directory.offset, limits).await.map(Some)
}

async fn read_exact(src: &dyn RangeSource, offset: u64, len: u64) -> Result<Vec<u8>, WheelError> {
    let bytes = src.read(offset, len).await.map_err(WheelError::Read)?;
    if bytes.len() as u64 != len {
        return Err(WheelError::Read(format!("asked for {len} bytes at {offset}, got {}", bytes.len())));
    }
    Ok(bytes)
}

/// Finds the end of central directory record (zip64 when the classic one overflows), checks
/// it, and reads the central directory it points at.
async fn central_directory(src: &dyn RangeSource, size: u64, limits: &WheelLimits) -> Result<Directory, WheelError> {
    if size < EOCD_LEN {
        return Err(invalid("too short to be a zip archive"));
    }
    // The record is the last thing in the file but for a comment of up to 64 KiB; also read
    // the zip64 locator that may sit just before it.
    let tail_len = size.min(EOCD_LEN + MAX_COMMENT + ZIP64_LOCATOR_LEN);
    let tail_start = size - tail_len;
    let tail = read_exact(src, tail_start, tail_len).await?;
    let eocd_at = (0..=tail.len().saturating_sub(EOCD_LEN as usize))
        .rev()
        .find(|&at| {
            le32(&tail, at) == Some(EOCD_SIGNATURE) && le16(&tail, at + 20).is_some_and(|comment| at + EOCD_LEN as usize + usize::from(comment) == tail.len())
        })
        .ok_or_else(|| invalid("no end of central directory record"))?;
    let field16 = |off: usize| le16(&tail, eocd_at + off).ok_or_else(|| invalid("truncated end of central directory"));
    let field32 = |off: usize| le32(&tail, eocd_at + off).ok_or_else(|| invalid("truncated end of central directory"));
    let (this_disk, directory_disk) = (field16(4)?, field16(6)?);
    let mut entries = u64::from(field16(10)?);
    let mut directory_size = u64::from(field32(12)?);
    let mut directory_offset = u64::from(field32(16)?);
    let eocd_offset = tail_start + eocd_at as u64;
    // Where the central directory must end: at the zip64 record when there is one.
    let mut directory_end = eocd_offset;
    // With a zip64 locator, the zip64 record has the real values. Without one, all-ones
    // values are taken as they are: Python's zipfile writes exactly 65535 entries that way.
    let locator_at = eocd_at.checked_sub(ZIP64_LOCATOR_LEN as usize).filter(|&at| le32(&tail, at) == Some(ZIP64_LOCATOR_SIGNATURE));
    if locator_at.is_none() && (this_disk != 0 || directory_disk != 0) {
        return Err(WheelError::Unsupported("a multi-disk archive".into()));
    }
    if let Some(at) = locator_at {
        let record_offset = le64(&tail, at + 8).ok_or_else(|| invalid("truncated zip64 locator"))?;
        if le32(&tail, at + 16).is_some_and(|disks| disks > 1) {
            return Err(WheelError::Unsupported("a multi-disk archive".into()));
        }
        let locator_offset = eocd_offset - ZIP64_LOCATOR_LEN;
        if record_offset.checked_add(ZIP64_EOCD_LEN).is_none_or(|end| end > locator_offset) {
            return Err(invalid("the zip64 end of central directory is out of place"));
        }
        let record = read_exact(src, record_offset, ZIP64_EOCD_LEN).await?;
        if le32(&record, 0) != Some(ZIP64_EOCD_SIGNATURE) {
            return Err(invalid("no zip64 end of central directory record where its locator points"));
        }
        let field = |off: usize| le64(&record, off).ok_or_else(|| invalid("truncated zip64 end of central directory"));
        if le32(&record, 16) != Some(0) || le32(&record, 20) != Some(0) {
            return Err(WheelError::Unsupported("a multi-disk archive".into()));
        }
        entries = field(32)?;
        directory_size = field(40)?;
        directory_offset = field(48)?;
        directory_end = record_offset;
    }
    if directory_size > limits.max_central_directory {
        return Err(WheelError::TooLarge("the central directory"));
    }
    // A central header is at least 46 bytes: a claimed count beyond that is a lie.
    if entries.saturating_mul(CENTRAL_HEADER_LEN as u64) > directory_size {
        return Err(invalid("more entries claimed than the central directory can hold"));
    }
    if directory_offset.checked_add(directory_size) != Some(directory_end) {
        return Err(invalid("the central directory does not end where its end record starts"));
    }
    let bytes = read_exact(src, directory_offset, directory_size).await?;
    Ok(Directory { offset: directory_offset, entries, bytes })
}

/// The central directory as read, with what the end record says of it.
struct Directory {
    offset: u64,
    entries: u64,
    bytes: Vec<u8>,
}

/// One central directory file header, the fields that matter here.
#[derive(Debug)]
struct Entry<'a> {
    name: &'a [u8],
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    uncompressed_size: u64,
    local_header_offset: u64,
}

/// Calls `visit` with every entry of the central directory `bytes` (read from
/// `directory_offset`), in order; nothing is collected, however many entries there are.
fn for_each_entry<'a>(bytes: &'a [u8], directory_offset: u64, mut visit: impl FnMut(Entry<'a>) -> Result<(), WheelError>) -> Result<(), WheelError> {
    let mut at = 0usize;
    while at < bytes.len() {
        let truncated = || invalid("truncated central directory header");
        if le32(bytes, at) != Some(CENTRAL_HEADER_SIGNATURE) {
            return Err(invalid("bad central directory header signature"));
        }
        let flags = le16(bytes, at + 8).ok_or_else(truncated)?;
        let method = le16(bytes, at + 10).ok_or_else(truncated)?;
        let crc32 = le32(bytes, at + 16).ok_or_else(truncated)?;
        let mut compressed_size = u64::from(le32(bytes, at + 20).ok_or_else(truncated)?);
        let mut uncompressed_size = u64::from(le32(bytes, at + 24).ok_or_else(truncated)?);
        let name_len = usize::from(le16(bytes, at + 28).ok_or_else(truncated)?);
        let extra_len = usize::from(le16(bytes, at + 30).ok_or_else(truncated)?);
        let comment_len = usize::from(le16(bytes, at + 32).ok_or_else(truncated)?);
        let disk = le16(bytes, at + 34).ok_or_else(truncated)?;
        let mut local_header_offset = u64::from(le32(bytes, at + 42).ok_or_else(truncated)?);
        let name_at = at + CENTRAL_HEADER_LEN;
        let extra_at = name_at + name_len;
        let next = extra_at + extra_len + comment_len;
        let name = bytes.get(name_at..extra_at).ok_or_else(truncated)?;
        let extra = bytes.get(extra_at..extra_at + extra_len).ok_or_else(truncated)?;
        if next > bytes.len() {
            return Err(truncated());
        }
        // APPNOTE 4.5.3: the zip64 extra field holds, in this order, only the values whose
        // classic field is all ones.
        if uncompressed_size == 0xffff_ffff || compressed_size == 0xffff_ffff || local_header_offset == 0xffff_ffff {
            let mut zip64 = zip64_extra(extra).ok_or_else(|| invalid("zip64 sizes without a zip64 extra field"))?.chunks_exact(8);
            let mut take = |field: &mut u64| -> Result<(), WheelError> {
                if *field == 0xffff_ffff {
                    let value = zip64.next().ok_or_else(|| invalid("short zip64 extra field"))?;
                    *field = value.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                }
                Ok(())
            };
            take(&mut uncompressed_size)?;
            take(&mut compressed_size)?;
            take(&mut local_header_offset)?;
        }
        if disk != 0 && disk != 0xffff {
            return Err(WheelError::Unsupported("a multi-disk archive".into()));
        }
        if local_header_offset >= directory_offset {
            return Err(invalid("an entry starts inside the central directory"));
        }
        visit(Entry { name, flags, method, crc32, compressed_size, uncompressed_size, local_header_offset })?;
        at = next;
    }
    Ok(())
}

/// The data of the zip64 extended information extra field, if `extra` has one.
fn zip64_extra(mut extra: &[u8]) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let id = le16(extra, 0)?;
        let len = usize::from(le16(extra, 2)?);
        let data = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA_ID {
            return Some(data);
        }
        extra = extra.get(4 + len..)?;
    }
    None
}

/// The `METADATA` entry of the one top-level `.dist-info` directory, after checking the
/// whole central directory (entries and their count).
fn metadata_entry(directory: &Directory) -> Result<Option<Entry<'_>>, WheelError> {
    let mut dist_info: Option<&[u8]> = None;
    let mut metadata = None;
    let mut count = 0u64;
    for_each_entry(&directory.bytes, directory.offset, |entry| {
        count += 1;
        let top = entry.name.split(|b| *b == b'/').next().unwrap_or_default();
        if !top.ends_with(b".dist-info") || entry.name.len() == top.len() {
            return Ok(());
        }
        if dist_info.is_some_and(|seen| seen != top) {
            return Err(invalid("more than one .dist-info directory"));
        }
        dist_info = Some(top);
        if entry.name.get(top.len()..) == Some(b"/METADATA".as_slice()) && metadata.replace(entry).is_some() {
            return Err(invalid("two METADATA entries"));
        }
        Ok(())
    })?;
    if count != directory.entries {
        return Err(invalid(format!("the end record counts {} entries, the central directory holds {count}", directory.entries)));
    }
    Ok(metadata)
}

async fn read_entry(src: &dyn RangeSource, entry: &Entry<'_>, directory_offset: u64, limits: &WheelLimits) -> Result<Vec<u8>, WheelError> {
    if entry.flags & 0x0001 != 0 {
        return Err(WheelError::Unsupported("an encrypted METADATA".into()));
    }
    if entry.uncompressed_size > limits.max_metadata || entry.compressed_size > limits.max_metadata {
        return Err(WheelError::TooLarge("METADATA"));
    }
    let local = read_exact(src, entry.local_header_offset, LOCAL_HEADER_LEN).await?;
    if le32(&local, 0) != Some(LOCAL_HEADER_SIGNATURE) {
        return Err(invalid("bad local file header signature"));
    }
    let name_len = u64::from(le16(&local, 26).unwrap_or_default());
    let extra_len = u64::from(le16(&local, 28).unwrap_or_default());
    let data_offset = entry.local_header_offset + LOCAL_HEADER_LEN + name_len + extra_len;
    if data_offset.checked_add(entry.compressed_size).is_none_or(|end| end > directory_offset) {
        return Err(invalid("METADATA runs into the central directory"));
    }
    // One read for the local name and the data; the local name must be the central one, or
    // the archive means different things to different readers.
    let name_and_extra = name_len + extra_len;
    let rest = read_exact(src, entry.local_header_offset + LOCAL_HEADER_LEN, name_and_extra + entry.compressed_size).await?;
    if rest.get(..entry.name.len()) != Some(entry.name) || name_len != entry.name.len() as u64 {
        return Err(invalid("the local header names another file than the central directory"));
    }
    let data = rest.get(name_and_extra as usize..).unwrap_or_default();
    let inflated = match entry.method {
        0 => {
            if entry.compressed_size != entry.uncompressed_size {
                return Err(invalid("a stored entry whose sizes differ"));
            }
            data.to_vec()
        }
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, entry.uncompressed_size as usize)
            .map_err(|e| invalid(format!("METADATA does not inflate: {e}")))?,
        method => return Err(WheelError::Unsupported(format!("compression method {method}"))),
    };
    if inflated.len() as u64 != entry.uncompressed_size {
        return Err(invalid("METADATA is not the size its header says"));
    }
    if crc32fast::hash(&inflated) != entry.crc32 {
        return Err(invalid("METADATA fails its CRC-32 check"));
    }
    Ok(inflated)
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}
