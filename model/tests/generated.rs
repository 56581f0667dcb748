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

#[test]
fn editing_a_schema_and_regenerating_adds_the_field() {
    // The upgrade path: edit a schema, rebuild. Exercised on a copy of the real schemas.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let tmp = std::env::temp_dir().join(format!("cmmp-regen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.join(p.file_name().unwrap())).unwrap();
    }
    let path = tmp.join("registration.xsd");
    let text = std::fs::read_to_string(&path).unwrap();
    let anchor = "<xs:attribute name=\"ApprovalStatus\"";
    assert!(text.contains(anchor), "registration.xsd changed shape; update this test");
    let edited = text.replacen(anchor, "<xs:attribute name=\"SiteHint\" type=\"xs:string\"/>\n      <xs:attribute name=\"ApprovalStatus\"", 1);
    std::fs::write(&path, edited).unwrap();

    let before = cmmp_codegen::generate(&cmmp_codegen::Config::new(&src, "unused")).unwrap();
    let after = cmmp_codegen::generate(&cmmp_codegen::Config::new(&tmp, "unused")).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    let old = &before.files["registration.rs"];
    let new = &after.files["registration.rs"];
    assert!(!old.contains("site_hint"));
    assert!(new.contains("pub site_hint: Option<String>,"), "{new}");
    assert!(new.contains("w.attr(\"SiteHint\", v);"), "the writer writes the new attribute");
    assert!(new.contains("b\"SiteHint\""), "the reader reads the new attribute");
    // Nothing else changes.
    for (name, text) in &before.files {
        if name != "registration.rs" {
            assert_eq!(text, &after.files[name], "{name} changed");
        }
    }
}
