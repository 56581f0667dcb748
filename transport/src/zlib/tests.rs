use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};

use super::{InflateError, InflateLimits, compress, inflate};

/// A UTF-16LE payload buffer shaped like §2.5: body, NUL, CRLF.
fn payload() -> Vec<u8> {
    let mut bytes: Vec<u8> =
        "<Report><Device/></Report>".encode_utf16().flat_map(u16::to_le_bytes).collect();
    bytes.extend_from_slice(&[0, 0, b'\r', b'\n']);
    bytes
}

#[test]
fn compresses_with_default_level_zlib_header() {
    let packed = compress(&payload());
    assert_eq!(&packed[..2], &[0x78, 0x9C]);
    assert_eq!(inflate(&packed, InflateLimits::default()), Ok(payload()));
}

#[test]
fn a_reused_stream_compresses_like_a_new_one() {
    let big: Vec<u8> = (0..300_000_u32).map(|i| (i % 253) as u8).collect();
    let first = compress(&payload());
    assert_eq!(compress(&big), compress_fresh(&big));
    assert_eq!(compress(&payload()), first);
    assert_eq!(first, compress_fresh(&payload()));
}

/// One thread's inflate stream is reused: whatever the last stream left it in (a checksum
/// error, a cut-off stream, a cap hit half-way, a stream with bytes after it), the next one
/// inflates exactly.
#[test]
fn a_reused_inflate_stream_starts_clean_after_any_outcome() {
    // Longer than the 32 KiB window, so a stale window would show.
    let data: Vec<u8> = (0..200_000_u32).map(|i| (i * 7 % 251) as u8 ^ (i >> 9) as u8).collect();
    let good = compress(&data);
    let mut bad_checksum = good.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xFF;
    let limits = InflateLimits::default();
    let broken: [(Vec<u8>, InflateLimits); 4] = [
        (bad_checksum, limits),
        (good[..good.len() / 2].to_vec(), limits),
        (good.clone(), InflateLimits { max_output: data.len() / 3, max_ratio: u32::MAX }),
        ([good.as_slice(), b"junk"].concat(), limits),
    ];
    for (input, limits) in broken {
        assert!(inflate(&input, limits).is_err());
        assert_eq!(inflate(&good, InflateLimits::default()), Ok(data.clone()));
    }
}

/// `data` deflated by a stream made for it alone.
fn compress_fresh(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::Compress::new(flate2::Compression::default(), true);
    let mut out = Vec::with_capacity(data.len() + 64);
    let status = encoder.compress_vec(data, &mut out, flate2::FlushCompress::Finish).unwrap();
    assert_eq!(status, flate2::Status::StreamEnd);
    out
}

#[test]
fn compresses_empty_input() {
    let packed = compress(&[]);
    assert_eq!(packed, [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    assert_eq!(inflate(&packed, InflateLimits::default()), Ok(Vec::new()));
}

#[test]
fn inflates_what_a_python_peer_sends() {
    // zlib.compress(b"hello") from CPython, as the third-party peers send (§2.5).
    let packed = [0x78, 0x9C, 0xCB, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x06, 0x2C, 0x02, 0x15];
    assert_eq!(inflate(&packed, InflateLimits::default()), Ok(b"hello".to_vec()));
}

#[test]
fn inflates_output_larger_than_one_chunk() {
    let data: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(inflate(&compress(&data), InflateLimits::default()), Ok(data));
}

#[test]
fn stops_a_1000_to_1_bomb_on_the_ratio() {
    let bomb = compress(&vec![0_u8; 10_000_000]);
    assert!(bomb.len() * 1000 <= 10_000_000, "a bomb of {} bytes", bomb.len());
    let started = Instant::now();
    assert_eq!(
        inflate(&bomb, InflateLimits::default()),
        Err(InflateError::RatioExceeded { ratio_limit: 400 })
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn stops_at_the_absolute_cap_when_it_is_smaller() {
    let bomb = compress(&vec![0_u8; 1_000_000]);
    let limits = InflateLimits { max_output: 4096, max_ratio: 1_000_000 };
    assert_eq!(inflate(&bomb, limits), Err(InflateError::TooLarge { limit: 4096 }));
}

#[test]
fn accepts_output_exactly_at_the_cap() {
    let data = vec![7_u8; 5000];
    let limits = InflateLimits { max_output: 5000, max_ratio: 1_000_000 };
    assert_eq!(inflate(&compress(&data), limits), Ok(data.clone()));
    let limits = InflateLimits { max_output: 4999, max_ratio: 1_000_000 };
    assert_eq!(inflate(&compress(&data), limits), Err(InflateError::TooLarge { limit: 4999 }));
}

#[test]
fn reports_the_ratio_at_its_exact_boundary() {
    let data = vec![7_u8; 5000];
    let packed = compress(&data);
    let ratio = u32::try_from(data.len().div_ceil(packed.len())).unwrap();
    let limits = InflateLimits { max_output: usize::MAX, max_ratio: ratio };
    assert_eq!(inflate(&packed, limits), Ok(data.clone()));
    let limits = InflateLimits { max_output: usize::MAX, max_ratio: ratio - 1 };
    assert_eq!(
        inflate(&packed, limits),
        Err(InflateError::RatioExceeded { ratio_limit: ratio - 1 })
    );
}

#[test]
fn rejects_truncated_stream() {
    let packed = compress(&payload());
    for len in [0, 1, 2, 5, packed.len() / 2, packed.len() - 4, packed.len() - 1] {
        assert_eq!(
            inflate(&packed[..len], InflateLimits::default()),
            Err(InflateError::Truncated),
            "{len}"
        );
    }
}

#[test]
fn rejects_corrupted_header() {
    let mut packed = compress(&payload());
    packed[1] ^= 0x01; // FCHECK no longer makes the header a multiple of 31
    assert!(matches!(inflate(&packed, InflateLimits::default()), Err(InflateError::Corrupt(_))));
}

#[test]
fn rejects_raw_deflate_and_gzip() {
    let packed = compress(&payload());
    let raw = &packed[2..packed.len() - 4];
    assert!(matches!(inflate(raw, InflateLimits::default()), Err(InflateError::Corrupt(_))));
    let gzip = [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x03, 0x00];
    assert!(matches!(inflate(&gzip, InflateLimits::default()), Err(InflateError::Corrupt(_))));
}

#[test]
fn rejects_checksum_mismatch() {
    let mut packed = compress(&payload());
    let last = packed.len() - 1;
    packed[last] ^= 0xFF;
    assert!(matches!(inflate(&packed, InflateLimits::default()), Err(InflateError::Corrupt(_))));
}

#[test]
fn rejects_garbage() {
    let garbage = b"<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";
    assert!(matches!(inflate(garbage, InflateLimits::default()), Err(InflateError::Corrupt(_))));
}

#[test]
fn rejects_bytes_after_the_stream() {
    let mut packed = compress(&payload());
    let end = packed.len();
    packed.extend_from_slice(b"\r\n");
    assert_eq!(
        inflate(&packed, InflateLimits::default()),
        Err(InflateError::TrailingData { offset: end })
    );
}

#[test]
fn rejects_two_concatenated_streams() {
    let mut packed = compress(b"one");
    let end = packed.len();
    packed.extend_from_slice(&compress(b"two"));
    assert_eq!(
        inflate(&packed, InflateLimits::default()),
        Err(InflateError::TrailingData { offset: end })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let limits = InflateLimits { max_output: usize::MAX, max_ratio: u32::MAX };
        prop_assert_eq!(inflate(&compress(&data), limits), Ok(data));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = inflate(&data, InflateLimits::default());
        let _ = inflate(&data, InflateLimits { max_output: 0, max_ratio: 0 });
    }

    #[test]
    fn damaged_streams_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        flip in any::<proptest::sample::Index>(),
        mask in 1_u8..,
    ) {
        let mut packed = compress(&data);
        let at = flip.index(packed.len());
        packed[at] ^= mask;
        let _ = inflate(&packed, InflateLimits::default());
    }
}
