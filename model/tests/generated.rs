//! Full-output goldens (house style HS-16): the code in `OUT_DIR` that this build compiled,
//! compared with the reviewed copy in `model/tests/generated/`. Every change to the
//! generator, a schema or the manifest shows its generated diff in review.
//! `UPDATE_GOLDEN=1 cargo test -p cmmp-model --test generated` re-blesses.

use std::collections::BTreeMap;
use std::path::Path;

use pretty_assertions::assert_eq;

fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            out.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            );
        }
    }
    out
}

#[test]
fn generated_code_matches_the_reviewed_copy() {
    let built = files(Path::new(env!("OUT_DIR")));
    assert!(
        built.contains_key("kinds.rs") && built.contains_key("msg.rs"),
        "OUT_DIR has no generated code"
    );
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/generated");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        std::fs::create_dir_all(&golden_dir).unwrap();
        for (name, text) in &built {
            std::fs::write(golden_dir.join(name), text).unwrap();
        }
        return;
    }
    let golden = files(&golden_dir);
    assert_eq!(
        golden.keys().collect::<Vec<_>>(),
        built.keys().collect::<Vec<_>>(),
        "generated file set changed"
    );
    for (name, text) in &built {
        assert_eq!(
            &golden[name], text,
            "{name} differs from model/tests/generated/{name}; bless with UPDATE_GOLDEN=1"
        );
    }
}
