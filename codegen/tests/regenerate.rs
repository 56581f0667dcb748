//! The upgrade path: edit a schema, rebuild. Exercised on a copy of the real schemas in
//! `schemas/`: an added optional attribute shows up as a field, in the writer and in the
//! reader, and nothing else changes.

use std::path::Path;

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
