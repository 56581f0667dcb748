//! Damage for the damaged-input property tests (`#[path]`-included by the test binaries that
//! use it): cuts, overwrites, spliced copies, removals, cleared runs and flipped bits, placed
//! at fractions of the input's length, so that every part of every input is reached.

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::{Strategy, any, prop};
use proptest::strategy::Union;

/// One damage to an input of `n` bytes; positions and lengths are fractions of `n`.
#[derive(Debug, Clone)]
pub(crate) enum Damage {
    /// Keep only the first `at` bytes.
    Cut { at: f64 },
    /// Overwrite bytes from `at` with `with` (growing the input at its end).
    Overwrite { at: f64, with: Vec<u8> },
    /// Copy `len` bytes from `from` to `at` (a repeated or misplaced piece).
    Splice { from: f64, len: f64, at: f64 },
    /// Remove `len` bytes from `at`.
    Remove { at: f64, len: f64 },
    /// Set `len` bytes from `at` to `with` (a NUL run in UTF-16 text, blanked markup).
    Clear { at: f64, len: f64, with: u8 },
    /// Flip one bit at `at`.
    Flip { at: f64, bit: u8 },
}

pub(crate) fn damage() -> impl Strategy<Value = Damage> {
    let f = || 0.0..1.0f64;
    let small = || 0.0..0.05f64;
    // Overwrites of any bytes, or of the characters that make and break XML.
    let with = prop::strategy::Union::new(vec![
        vec(any::<u8>(), 1..16).boxed(),
        "[<>/=\"' &;#x0-9A-Za-z:{}\\-\u{e9}\u{1F600}]{1,12}".prop_map(String::into_bytes).boxed(),
    ]);
    Union::new(vec![
        f().prop_map(|at| Damage::Cut { at }).boxed(),
        (f(), with).prop_map(|(at, with)| Damage::Overwrite { at, with }).boxed(),
        (f(), small(), f()).prop_map(|(from, len, at)| Damage::Splice { from, len, at }).boxed(),
        (f(), small()).prop_map(|(at, len)| Damage::Remove { at, len }).boxed(),
        (f(), small(), prop::sample::select(vec![0u8, b' ']))
            .prop_map(|(at, len, with)| Damage::Clear { at, len, with })
            .boxed(),
        (f(), 0..8u8).prop_map(|(at, bit)| Damage::Flip { at, bit }).boxed(),
    ])
}

/// `bytes` with `damage` done to them.
pub(crate) fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    let n = bytes.len();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let at = |x: f64| ((x * n as f64) as usize).min(n);
    let run = |start: usize, len: f64| start..(start + at(len)).min(n);
    match damage {
        Damage::Cut { at: a } => bytes.truncate(at(*a)),
        Damage::Overwrite { at: a, with } => {
            let start = at(*a);
            let end = (start + with.len()).min(n);
            bytes.splice(start..end, with.iter().copied());
        }
        Damage::Splice { from, len, at: a } => {
            let piece = bytes[run(at(*from), *len)].to_vec();
            let to = at(*a);
            bytes.splice(to..to, piece);
        }
        Damage::Remove { at: a, len } => {
            bytes.drain(run(at(*a), *len));
        }
        Damage::Clear { at: a, len, with } => bytes[run(at(*a), *len)].fill(*with),
        Damage::Flip { at: a, bit } => {
            if let Some(b) = bytes.get_mut(at(*a)) {
                *b ^= 1 << bit;
            }
        }
    }
    bytes
}

/// `bytes` with every one of `damages` done in turn.
pub(crate) fn apply_all(bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    damages.iter().fold(bytes, apply)
}

/// `text` with `damages` done to its bytes; bytes no longer UTF-8 become U+FFFD.
pub(crate) fn damage_text(text: &str, damages: &[Damage]) -> String {
    String::from_utf8_lossy(&apply_all(text.as_bytes().to_vec(), damages)).into_owned()
}
