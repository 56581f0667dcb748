//! The document corpus (`model/tests/documents/`): every sample decodes, re-encodes to its
//! canonical bytes, survives a JSON round trip, and — with the encoded output — validates
//! against its schema with `xmllint`. Lenient samples (`lenient/`) are documents a
//! management point accepts but the schema does not; they decode and re-encode canonically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmmp_model::kinds::Document;
use pretty_assertions::assert_eq;

struct Sample {
    schema: String,
    path: PathBuf,
    lenient: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/documents")
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let schema = dir.file_name().unwrap().to_string_lossy().into_owned();
        for (sub, lenient) in [(dir.clone(), false), (dir.join("lenient"), true)] {
            let Ok(entries) = std::fs::read_dir(&sub) else { continue };
            let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".xml") && !name.ends_with(".canonical.xml") {
                    out.push(Sample { schema: schema.clone(), path, lenient });
                }
            }
        }
    }
    out
}

fn canonical_of(path: &Path) -> Option<String> {
    let c = path.with_extension("canonical.xml");
    c.exists().then(|| std::fs::read_to_string(c).unwrap())
}

#[test]
fn every_sample_round_trips_to_canonical_bytes() {
    let samples = samples();
    assert!(samples.len() >= 60, "corpus is missing: {}", samples.len());
    for s in &samples {
        let text = std::fs::read_to_string(&s.path).unwrap();
        let doc = Document::decode(&s.schema, &text)
            .unwrap_or_else(|e| panic!("{}: {e}", s.path.display()));
        let encoded = doc.to_xml().unwrap();
        let expected = canonical_of(&s.path).unwrap_or_else(|| {
            assert!(!s.lenient, "{}: a lenient sample needs a .canonical.xml", s.path.display());
            text.clone()
        });
        assert_eq!(expected, encoded, "{}", s.path.display());
        // Canonical output is a fixed point.
        let again = Document::decode(&s.schema, &encoded).unwrap().to_xml().unwrap();
        assert_eq!(encoded, again, "{}: not stable", s.path.display());
        // JSON (the CLI's input format) carries the same message.
        let json = serde_json::to_string(&doc).unwrap();
        let back: Document = serde_json::from_str(&json).unwrap();
        assert_eq!(doc, back, "{}: JSON round trip", s.path.display());
    }
}

#[test]
fn every_schema_root_has_a_sample() {
    let samples = samples();
    for (schema, root_name) in Document::ROOTS {
        let found = samples.iter().filter(|s| !s.lenient && s.schema == *schema).any(|s| {
            let text = std::fs::read_to_string(&s.path).unwrap();
            cmmp_model::xml::root_name(&text).unwrap() == *root_name
        });
        assert!(found, "no sample for `{root_name}` of schemas/{schema}.xsd");
    }
}

/// Validates the corpus and the encoder's output with xmllint, one run per schema.
#[test]
fn samples_and_encoded_output_validate_against_their_schemas() {
    let out_dir = std::env::temp_dir().join(format!("cmmp-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut by_schema: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (i, s) in samples().iter().filter(|s| !s.lenient).enumerate() {
        let text = std::fs::read_to_string(&s.path).unwrap();
        let encoded = Document::decode(&s.schema, &text).unwrap().to_xml().unwrap();
        let out = out_dir.join(format!("{i}-{}", s.path.file_name().unwrap().to_string_lossy()));
        std::fs::write(&out, encoded).unwrap();
        let files = by_schema.entry(s.schema.clone()).or_default();
        // A sample that declares UTF-16 (as a real client's state message does) is stored as
        // the UTF-8 text the transport hands the model; xmllint would take the declaration
        // at its word, so only its encoded form is validated.
        if !text.starts_with("<?xml") || !text[..text.find("?>").unwrap_or(0)].contains("UTF-16") {
            files.push(s.path.clone());
        }
        files.push(out);
    }
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    for (schema, files) in by_schema {
        let result = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(schemas.join(format!("{schema}.xsd")))
            .args(&files)
            .output()
            .expect(
                "xmllint is needed for this test: apt-get install -y libxml2-utils (.ci/run does)",
            );
        assert!(
            result.status.success(),
            "xmllint rejected documents of {schema}.xsd:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
