//! Feature goldens (house style HS-16): each `tests/golden/<case>/` holds a tiny schema set
//! (`schemas/*.xsd` + `schemas/endpoints.toml`) exercising one construct, and the expected
//! output: `expected/<file>.rs` for every generated file, or `expected.err` with the
//! diagnostic for an error case. `UPDATE_GOLDEN=1 cargo test -p cmmp-codegen` re-blesses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    cases
}

fn bless() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

fn read_expected(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

#[test]
fn feature_goldens() {
    let cases = cases();
    assert!(cases.len() >= 8, "expected the golden cases, found {}", cases.len());
    for case in cases {
        let config = cmmp_codegen::Config::new(case.join("schemas"), case.join("out-unused"));
        let result = cmmp_codegen::generate(&config);
        let err_file = case.join("expected.err");
        let expected_dir = case.join("expected");
        match result {
            Ok(out) => {
                if bless() {
                    let _ = std::fs::remove_dir_all(&expected_dir);
                    std::fs::create_dir_all(&expected_dir).unwrap();
                    for (name, text) in &out.files {
                        std::fs::write(expected_dir.join(name), text).unwrap();
                    }
                    continue;
                }
                assert!(!err_file.exists(), "{}: expected an error, got output", case.display());
                assert_eq!(read_expected(&expected_dir), out.files, "case {}", case.display());
            }
            Err(e) => {
                let text = format!("{e}\n");
                if bless() {
                    std::fs::write(&err_file, &text).unwrap();
                    continue;
                }
                let expected = std::fs::read_to_string(&err_file)
                    .unwrap_or_else(|_| panic!("{}: unexpected error: {e}", case.display()));
                assert_eq!(expected, text, "case {}", case.display());
            }
        }
    }
}

#[test]
fn generation_is_deterministic() {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let config = cmmp_codegen::Config::new(&schemas, "unused");
    let a = cmmp_codegen::generate(&config).unwrap();
    let b = cmmp_codegen::generate(&config).unwrap();
    assert_eq!(a.files, b.files);
    for text in a.files.values() {
        assert!(!text.contains(env!("CARGO_MANIFEST_DIR")), "output must not hold absolute paths");
    }
}
