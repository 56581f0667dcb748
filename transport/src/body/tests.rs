use pretty_assertions::assert_eq;
use proptest::prelude::{Just, ProptestConfig, any, prop_assert_eq, prop_assume, proptest};

use super::{
    BodyError, BomPolicy, decode_body, decode_body_limited, decode_header, encode_body,
    encode_header,
};

/// UTF-16LE of `s`, built with the standard library as an independent reference.
fn le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `le(s)` followed by raw bytes.
fn le_then(s: &str, tail: &[u8]) -> Vec<u8> {
    let mut bytes = le(s);
    bytes.extend_from_slice(tail);
    bytes
}

#[test]
fn encodes_body_without_bom_and_with_one_nul() {
    let mut out = vec![0xAA];
    encode_body("<Msg/>", &mut out);
    assert_eq!(out, b"\xAA<\0M\0s\0g\0/\0>\0\0\0");
}

#[test]
fn encodes_non_bmp_text_as_surrogate_pairs() {
    let mut out = Vec::new();
    encode_body("é😀", &mut out);
    assert_eq!(out, [0xE9, 0x00, 0x3D, 0xD8, 0x00, 0xDE, 0x00, 0x00]);
}

#[test]
fn encodes_header_with_bom_and_without_nul() {
    let mut out = Vec::new();
    encode_header("<Msg/>", &mut out);
    assert_eq!(out, b"\xFF\xFE<\0M\0s\0g\0/\0>\0");
}

#[test]
fn decodes_body_and_drops_the_nul() {
    assert_eq!(decode_body(&le_then("<a>é😀</a>", &[0, 0])), Ok("<a>é😀</a>".to_owned()));
}

#[test]
fn decodes_lone_nul_as_empty_body() {
    assert_eq!(decode_body(&[0, 0]), Ok(String::new()));
}

#[test]
fn rejects_empty_body_as_missing_nul() {
    assert_eq!(decode_body(&[]), Err(BodyError::MissingNul));
}

#[test]
fn rejects_body_without_nul() {
    assert_eq!(decode_body(&le("<a/>")), Err(BodyError::MissingNul));
}

#[test]
fn rejects_odd_length_before_anything_else() {
    assert_eq!(decode_body(&le_then("<a/>", &[0, 0, 0x41])), Err(BodyError::OddLength { len: 11 }));
    assert_eq!(decode_body(&[0xFF]), Err(BodyError::OddLength { len: 1 }));
    assert_eq!(
        decode_header(b"\xFF\xFE<\0a", BomPolicy::Optional),
        Err(BodyError::OddLength { len: 5 })
    );
}

#[test]
fn rejects_bom_in_body() {
    assert_eq!(decode_body(&le_then("\u{FEFF}<a/>", &[0, 0])), Err(BodyError::UnexpectedBom));
    assert_eq!(decode_body(&[0xFF, 0xFE, 0, 0]), Err(BodyError::UnexpectedBom));
}

#[test]
fn rejects_second_nul_at_the_end() {
    assert_eq!(
        decode_body(&le_then("<a/>", &[0, 0, 0, 0])),
        Err(BodyError::ExtraNul { offset: 10 })
    );
    assert_eq!(decode_body(&[0, 0, 0, 0, 0, 0]), Err(BodyError::ExtraNul { offset: 2 }));
}

#[test]
fn rejects_nul_inside_the_text() {
    assert_eq!(decode_body(&le("<a>\0</a>\0")), Err(BodyError::EmbeddedNul { offset: 6 }));
}

#[test]
fn rejects_bytes_after_the_terminator() {
    assert_eq!(decode_body(&le("<a/>\0junk")), Err(BodyError::TrailingBytes { offset: 10 }));
    // The CRLF that follows the body in a payload buffer (§2.5) is not part of the body.
    assert_eq!(decode_body(&le("<a/>\0\r\n")), Err(BodyError::TrailingBytes { offset: 10 }));
}

#[test]
fn rejects_lone_high_surrogate() {
    // `00 D8` is a high surrogate; `41 00` is not a low surrogate.
    assert_eq!(
        decode_body(&[0x3C, 0x00, 0x00, 0xD8, 0x41, 0x00, 0x00, 0x00]),
        Err(BodyError::UnpairedSurrogate { offset: 2 })
    );
}

#[test]
fn rejects_high_surrogate_before_the_nul() {
    assert_eq!(
        decode_body(&[0x00, 0xD8, 0x00, 0x00]),
        Err(BodyError::UnpairedSurrogate { offset: 0 })
    );
}

#[test]
fn rejects_lone_low_surrogate() {
    assert_eq!(
        decode_body(&[0x41, 0x00, 0x41, 0x00, 0x00, 0xDC, 0x00, 0x00]),
        Err(BodyError::UnpairedSurrogate { offset: 4 })
    );
}

#[test]
fn rejects_swapped_surrogate_pair() {
    assert_eq!(
        decode_body(&[0x00, 0xDE, 0x3D, 0xD8, 0x00, 0x00]),
        Err(BodyError::UnpairedSurrogate { offset: 0 })
    );
}

#[test]
fn refuses_body_over_the_limit_before_decoding() {
    let bytes = le_then("<a/>", &[0, 0]);
    assert_eq!(decode_body_limited(&bytes, 9), Err(BodyError::TooLarge { len: 10, limit: 9 }));
    assert_eq!(decode_body_limited(&bytes, 10), Ok("<a/>".to_owned()));
    // Over the limit wins even over odd length.
    assert_eq!(decode_body_limited(&[1, 2, 3], 2), Err(BodyError::TooLarge { len: 3, limit: 2 }));
}

/// Header parts: BOM policy, tolerated final NUL, offsets counted from the BOM.
mod header {
    use pretty_assertions::assert_eq;

    use super::{BodyError, BomPolicy, decode_header, le, le_then};

    #[test]
    fn strips_the_bom() {
        for policy in [BomPolicy::Required, BomPolicy::Optional] {
            assert_eq!(decode_header(&le("\u{FEFF}<Msg/>"), policy), Ok("<Msg/>".to_owned()));
        }
    }

    #[test]
    fn requires_the_bom_when_asked() {
        assert_eq!(decode_header(&le("<Msg/>"), BomPolicy::Required), Err(BodyError::MissingBom));
        assert_eq!(decode_header(&[], BomPolicy::Required), Err(BodyError::MissingBom));
    }

    #[test]
    fn accepts_a_missing_bom_when_optional() {
        assert_eq!(decode_header(&le("<Msg/>"), BomPolicy::Optional), Ok("<Msg/>".to_owned()));
        assert_eq!(decode_header(&[], BomPolicy::Optional), Ok(String::new()));
    }

    #[test]
    fn keeps_a_second_bom_as_text() {
        assert_eq!(
            decode_header(&le("\u{FEFF}\u{FEFF}x"), BomPolicy::Required),
            Ok("\u{FEFF}x".to_owned())
        );
    }

    #[test]
    fn tolerates_one_final_nul() {
        assert_eq!(
            decode_header(&le("\u{FEFF}<Msg/>\0"), BomPolicy::Required),
            Ok("<Msg/>".to_owned())
        );
    }

    #[test]
    fn rejects_two_final_nuls() {
        assert_eq!(
            decode_header(&le("\u{FEFF}<Msg/>\0\0"), BomPolicy::Required),
            Err(BodyError::ExtraNul { offset: 16 })
        );
    }

    #[test]
    fn rejects_nul_followed_by_text() {
        assert_eq!(
            decode_header(&le("\u{FEFF}<M\0sg/>"), BomPolicy::Required),
            Err(BodyError::EmbeddedNul { offset: 6 })
        );
        assert_eq!(
            decode_header(&le("<M\0sg/>\0"), BomPolicy::Optional),
            Err(BodyError::EmbeddedNul { offset: 4 })
        );
    }

    #[test]
    fn counts_surrogate_offsets_from_the_bom() {
        assert_eq!(
            decode_header(&le_then("\u{FEFF}<", &[0x00, 0xDC]), BomPolicy::Required),
            Err(BodyError::UnpairedSurrogate { offset: 4 })
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn body_round_trips(text in any::<String>()) {
        prop_assume!(!text.contains('\0') && !text.starts_with('\u{FEFF}'));
        let mut bytes = Vec::new();
        encode_body(&text, &mut bytes);
        prop_assert_eq!(&bytes, &le_then(&text, &[0, 0]));
        prop_assert_eq!(decode_body(&bytes), Ok(text));
    }

    /// Long ASCII runs (across blocks of 32 bytes and pieces of 8 KiB) between other
    /// characters widen to what the standard library encodes.
    #[test]
    fn ascii_runs_between_other_characters_widen_like_std(
        parts in proptest::collection::vec(
            (0_usize..9000, proptest::prop_oneof![
                Just(""), Just("é"), Just("€"), Just("😀"), Just("\u{7F}"), Just("\u{80}"),
            ]),
            0..5,
        ),
        seed in any::<u8>(),
    ) {
        let mut text = String::new();
        for (i, (run, other)) in parts.iter().enumerate() {
            let base = seed.wrapping_add(u8::try_from(i).unwrap_or(0));
            text.extend((0..*run).map(|k| char::from(b' ' + base.wrapping_add(u8::try_from(k % 256).unwrap_or(0)) % 95)));
            text.push_str(other);
        }
        let mut bytes = vec![0xAA];
        encode_header(&text, &mut bytes);
        prop_assert_eq!(&bytes[..1], &[0xAA]);
        prop_assert_eq!(&bytes[1..], &le_then("\u{FEFF}", &le(&text)));
    }

    #[test]
    fn header_round_trips(text in any::<String>()) {
        prop_assume!(!text.contains('\0'));
        let mut bytes = Vec::new();
        encode_header(&text, &mut bytes);
        prop_assert_eq!(&bytes, &le_then("\u{FEFF}", &le(&text)));
        prop_assert_eq!(decode_header(&bytes, BomPolicy::Required), Ok(text.clone()));
        prop_assert_eq!(decode_header(&bytes, BomPolicy::Optional), Ok(text));
    }

    #[test]
    fn the_header_fast_path_agrees_with_the_strict_path(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        required in any::<bool>(),
    ) {
        let policy = if required { BomPolicy::Required } else { BomPolicy::Optional };
        if let Some(text) = super::decode_well_formed_header(&bytes, policy) {
            prop_assert_eq!(super::decode_header_strict(&bytes, policy), Ok(text));
        }
        // And what the strict path accepts, the fast path accepts too (no detour).
        if let Ok(text) = super::decode_header_strict(&bytes, policy) {
            prop_assert_eq!(super::decode_well_formed_header(&bytes, policy), Some(text));
        }
    }

    #[test]
    fn body_decode_agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Whenever the strict decoder accepts, std's decoder sees the same text plus one NUL.
        if let Ok(text) = decode_body(&bytes) {
            let units: Vec<u16> =
                bytes.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
            prop_assert_eq!(String::from_utf16(&units).ok(), Some(format!("{text}\0")));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_body(&bytes);
        let _ = decode_body_limited(&bytes, 100);
        let _ = decode_header(&bytes, BomPolicy::Required);
        let _ = decode_header(&bytes, BomPolicy::Optional);
    }

    #[test]
    fn arbitrary_code_units_never_panic(units in proptest::collection::vec(
        proptest::prop_oneof![Just(0_u16), Just(0xFEFF_u16), 0xD800_u16..0xE000, any::<u16>()],
        0..64,
    )) {
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
        let _ = decode_body(&bytes);
        let _ = decode_header(&bytes, BomPolicy::Optional);
    }

    #[test]
    fn embedded_nul_is_located(
        before in "[a-z<>/]{1,20}",
        after in "[a-z<>/]{1,20}",
    ) {
        let bytes = le(&format!("{before}\0{after}\0"));
        prop_assert_eq!(
            decode_body(&bytes),
            Err(BodyError::EmbeddedNul { offset: before.len() * 2 })
        );
    }
}
