//! zlib (RFC 1950) payloads: `zlib-compress` requests, bounded inflate of replies (§2.5, §2.7).
//!
//! A compressed payload is one zlib stream over the whole payload buffer (body, NUL,
//! attachments, CRLF), first bytes `78 9C` (protocol §2.5, §8 rules 2 and 6). Replies are
//! hostile input (field notes §5 item 1, house style HS-54): [`inflate`] runs
//! `flate2::Decompress` into an output buffer that never grows past an absolute size cap or a
//! ratio cap (plus one byte), and stops as soon as the output passes either, so a zlib bomb
//! never gets allocated. flate2 uses its zlib-rs backend. No flate2 type appears in this
//! module's API.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

/// Compresses `data` into one zlib stream (RFC 1950) at the default level, header `78 9C` (§2.5).
///
/// Each thread keeps one deflate stream and resets it for the next call, so the output is the
/// same as with a new stream.
///
/// # Examples
///
/// ```
/// use cmmp_transport::zlib::{InflateLimits, compress, inflate};
///
/// let packed = compress(b"<\0a\0/\0>\0\0\0\r\n");
/// assert_eq!(&packed[..2], &[0x78, 0x9C]);
/// assert_eq!(inflate(&packed, InflateLimits::default()).unwrap(), b"<\0a\0/\0>\0\0\0\r\n");
/// ```
pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_at(data, DEFAULT_LEVEL)
}

/// zlib's default level (6): the header `78 9C` seen in real captures (§2.5).
pub const DEFAULT_LEVEL: u8 = 6;

/// Compresses `data` into one zlib stream at `level` (1 fastest … 9 smallest; a level above 9
/// is taken as 9, 0 as 1). The header's `FLEVEL` bits follow the level as zlib writes them:
/// `78 01` for 1, `78 5E` for 2–5, `78 9C` for 6, `78 DA` for 7–9. Any RFC 1950 inflater
/// reads them all; whether every MP does is **\[UNCONFIRMED\]** (captures show `78 9C`), so
/// [`crate::wire::Settings::compression_level`] defaults to 6.
///
/// ```
/// use cmmp_transport::zlib::{InflateLimits, compress_at, inflate};
///
/// let packed = compress_at(b"<\0a\0/\0>\0\0\0\r\n", 1);
/// assert_eq!(&packed[..2], &[0x78, 0x01]);
/// assert_eq!(inflate(&packed, InflateLimits::default()).unwrap(), b"<\0a\0/\0>\0\0\0\r\n");
/// ```
pub fn compress_at(data: &[u8], level: u8) -> Vec<u8> {
    let level = level.clamp(1, 9);
    DEFLATE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = Some((level, Compress::new(Compression::new(u32::from(level)), true)));
            }
            let Some((_, encoder)) = slot.as_mut() else { unreachable!("set just above") };
            // A reset stream deflates exactly as a new one does; only the allocation is kept.
            encoder.reset();
            deflate_all(encoder, data)
        }
        // Not reachable (`deflate_all` does not call back here); a fresh stream is correct.
        Err(_) => deflate_all(&mut Compress::new(Compression::new(u32::from(level)), true), data),
    })
}

thread_local! {
    /// This thread's deflate stream and its level, kept between messages. Its state is about
    /// 300 KB; making and freeing one per message cost more than deflating a small DDR
    /// (BENCHMARKS.md).
    static DEFLATE: RefCell<Option<(u8, Compress)>> = const { RefCell::new(None) };

    /// This thread's inflate stream, kept between messages like [`DEFLATE`]: its window and
    /// state (about 40 KB) were allocated, zeroed and freed for every request an MP decodes.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Deflates `data` to the end of the stream with a freshly created or reset `encoder`.
fn deflate_all(encoder: &mut Compress, data: &[u8]) -> Vec<u8> {
    // Stored blocks cost 5 bytes per 64 KiB; the zlib header and Adler-32 trailer 6 more.
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(encoder.total_in()).unwrap_or(data.len());
        let rest = data.get(consumed..).unwrap_or_default();
        // Invariant: deflating an in-memory buffer with `Finish` has no data-dependent failure;
        // flate2 reports an error only for misuse of the stream state, which this loop avoids.
        let status = encoder
            .compress_vec(rest, &mut out, FlushCompress::Finish)
            .expect("deflate of an in-memory buffer does not fail");
        if status == Status::StreamEnd {
            return out;
        }
        out.reserve(out.capacity().max(64));
    }
}

/// Inflates one zlib stream (RFC 1950) within `limits`, rejecting bytes after its end (§2.7).
///
/// The output buffer never holds more than one byte past the effective cap,
/// `min(max_output, max_ratio * data.len())`, whatever the stream claims: it starts at a
/// typical size for the input and doubles, each time capped, so a zlib bomb never gets
/// allocated. When the output passes both caps, the smaller one is reported.
///
/// # Errors
///
/// - [`InflateError::TooLarge`] when the output would exceed `limits.max_output` bytes;
/// - [`InflateError::RatioExceeded`] when it would exceed `limits.max_ratio * data.len()`;
/// - [`InflateError::Corrupt`] for a bad header, bad block data or an Adler-32 mismatch;
/// - [`InflateError::Truncated`] when the input ends before the stream does (empty included);
/// - [`InflateError::TrailingData`] when bytes follow the end of the stream.
pub fn inflate(data: &[u8], limits: InflateLimits) -> Result<Vec<u8>, InflateError> {
    let ratio_cap =
        usize::try_from(limits.max_ratio).unwrap_or(usize::MAX).saturating_mul(data.len());
    let cap = limits.max_output.min(ratio_cap);
    let over_cap = || {
        if limits.max_output <= ratio_cap {
            InflateError::TooLarge { limit: limits.max_output }
        } else {
            InflateError::RatioExceeded { ratio_limit: limits.max_ratio }
        }
    };
    // One byte past the cap is enough to know the cap is passed.
    let room = cap.saturating_add(1);
    // A reset stream inflates exactly as a new one does; only the allocation is kept. The
    // stream is taken out of the slot while in use, so nothing can see it half-way.
    let mut decoder = INFLATE
        .try_with(|cell| cell.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten()
        .map_or_else(
            || Decompress::new(true),
            |mut kept| {
                kept.reset(true);
                kept
            },
        );
    let result = inflate_with(&mut decoder, data, cap, room, over_cap);
    let _ = INFLATE.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = Some(decoder);
        }
    });
    result
}

/// The body of [`inflate`], with its stream.
fn inflate_with(
    decoder: &mut Decompress,
    data: &[u8],
    cap: usize,
    room: usize,
    over_cap: impl Fn() -> InflateError,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::with_capacity(
        data.len().saturating_mul(TYPICAL_RATIO).clamp(CHUNK, MAX_GUESS).min(room),
    );
    loop {
        if out.len() == out.capacity() {
            // Double, but never past the room: the capacity bounds what one call writes.
            out.reserve_exact(out.capacity().max(CHUNK).min(room - out.len()));
        }
        let consumed = to_usize(decoder.total_in());
        let rest = data.get(consumed..).unwrap_or_default();
        let produced_before = decoder.total_out();
        let status = decoder
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|error| InflateError::Corrupt(error.to_string()))?;
        let produced = to_usize(decoder.total_out() - produced_before);
        if out.len() > cap {
            return Err(over_cap());
        }
        let consumed_now = to_usize(decoder.total_in());
        match status {
            Status::StreamEnd if consumed_now < data.len() => {
                return Err(InflateError::TrailingData { offset: consumed_now });
            }
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError
                if produced == 0 && consumed_now == consumed && out.len() < out.capacity() =>
            {
                // No progress with room to write: the input is used up mid-stream.
                return Err(InflateError::Truncated);
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// Caps on what [`inflate`] produces from untrusted input (field notes §5 items 1 and 9).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct InflateLimits {
    /// Largest output accepted, in bytes.
    pub max_output: usize,
    /// Largest accepted ratio of output bytes to input bytes.
    pub max_ratio: u32,
}

impl Default for InflateLimits {
    /// 64 MiB of output at a ratio of at most 400:1.
    ///
    /// 64 MiB is well above any reply an MP sends in one exchange (large policies and content
    /// location lists are a few MiB of UTF-16) and bounds memory per exchange. Deflate peaks at
    /// about 1032:1, which is what a bomb of zeros reaches. Real UTF-16LE XML compresses
    /// 10–30:1 (varied values; the zero high bytes of UTF-16 double UTF-8's ratio), and a
    /// document of one element repeated 100 000 times reaches about 260:1; 400:1 accepts that
    /// with margin and still stops a bomb at under 40 % of its expansion.
    fn default() -> Self {
        Self { max_output: 64 * 1024 * 1024, max_ratio: 400 }
    }
}

/// Why a zlib stream was not inflated (§2.5, §2.7; field notes §5 item 1).
#[derive(Clone, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum InflateError {
    /// The stream is not valid zlib: header, block data or Adler-32 checksum. Carries
    /// flate2's message.
    #[error("corrupt zlib stream: {0}")]
    Corrupt(String),
    /// The output passed `max_ratio` times the input length.
    #[error("inflated output exceeds {ratio_limit}:1 of its input")]
    RatioExceeded {
        /// The `max_ratio` in force.
        ratio_limit: u32,
    },
    /// The output passed `max_output` bytes.
    #[error("inflated output exceeds {limit} bytes")]
    TooLarge {
        /// The `max_output` in force.
        limit: usize,
    },
    /// Bytes follow the end of the zlib stream; `offset` is the first of them.
    #[error("data after the end of the zlib stream at byte {offset}")]
    TrailingData {
        /// Byte offset of the first byte after the stream.
        offset: usize,
    },
    /// The input ended before the zlib stream did.
    #[error("zlib stream truncated")]
    Truncated,
}

/// Converts a flate2 byte counter, bounded by a slice length, to `usize`.
fn to_usize(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// The smallest output buffer, and the smallest growth step.
const CHUNK: usize = 32 * 1024;

/// The first output buffer is this many times the input: UTF-16LE XML inflates 7–30:1
/// (see [`InflateLimits::default`]), so a typical reply needs no second allocation.
const TYPICAL_RATIO: usize = 8;

/// The largest first output buffer (16 MiB); bigger outputs grow by doubling from there.
const MAX_GUESS: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests;
