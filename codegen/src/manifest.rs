//! `schemas/endpoints.toml` → a checked manifest of message kinds.
//!
//! The manifest names every message kind (Rust type, schema and root, endpoint, delivery,
//! `FileType`, signing, layout) and maps XSD simple types to cmmp value types. Violations of
//! the rules of house style HS-42 are errors with `file:line`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, line_of};

/// The checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// XSD simple type name → value type name in the runtime's `value` module.
    pub types: BTreeMap<String, String>,
    /// `(schema file, root)` pairs whose decoders accept any root element name.
    pub lenient_roots: Vec<(String, String)>,
    /// Message kinds in manifest order.
    pub kinds: Vec<Kind>,
}

/// One message kind.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Rust type name, e.g. `DdrReport`.
    pub name: String,
    /// One-line description.
    pub doc: String,
    /// `Msg/TargetEndpoint`.
    pub endpoint: String,
    /// Schema file of the body, e.g. `ddr.xsd`.
    pub schema: String,
    /// Root element of the body.
    pub root: String,
    /// Reply `(schema, root)` for Invoke kinds; `None` for Post kinds.
    pub reply: Option<(String, String)>,
    /// The `FileType` property.
    pub file_type: Option<String>,
    /// `None`, `Optional` or `Required`.
    pub signing: String,
    /// `Body`, `HeaderAndAttachment` or `BodyAndFiles`.
    pub layout: String,
    /// Attachment name for `HeaderAndAttachment`.
    pub attachment: Option<String>,
    /// Manifest line of the entry.
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    types: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    lenient_roots: Vec<Spanned<RawRef>>,
    #[serde(default)]
    kind: Vec<Spanned<RawKind>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawRef {
    schema: String,
    root: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    name: String,
    doc: String,
    endpoint: String,
    schema: String,
    root: String,
    delivery: Spanned<String>,
    reply: Option<RawRef>,
    file_type: Option<String>,
    signing: Spanned<String>,
    layout: Spanned<String>,
    attachment: Option<String>,
}

/// Parses and checks the manifest text. `file` is the display path used in diagnostics.
///
/// Schema-dependent checks (roots exist) happen in [`crate::generate`].
///
/// # Errors
///
/// The first violation, as `file:line: message`.
pub fn parse(file: &str, text: &str) -> Result<Manifest, Error> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        Error::at(file, line, e.message().trim().to_owned())
    })?;
    let mut types = BTreeMap::new();
    for (k, v) in raw.types {
        if !is_ident(v.get_ref()) {
            return Err(Error::at(
                file,
                line_of(text, v.span().start),
                format!("`{}` is not a Rust type name", v.get_ref()),
            ));
        }
        types.insert(k, v.into_inner());
    }
    let lenient_roots = raw.lenient_roots.into_iter().map(|r| {
        let r = r.into_inner();
        (r.schema, r.root)
    });
    let mut kinds = Vec::new();
    let mut names = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for spanned in raw.kind {
        let line = line_of(text, spanned.span().start);
        let k = spanned.into_inner();
        let err = |l: usize, m: String| Error::at(file, l, m);
        if !is_ident(&k.name) {
            return Err(err(line, format!("kind name `{}` is not a Rust type name", k.name)));
        }
        if let Some(prev) = names.insert(k.name.clone(), line) {
            return Err(err(line, format!("kind `{}` is already declared at line {prev}", k.name)));
        }
        let key = (k.endpoint.to_ascii_lowercase(), k.file_type.clone(), k.root.clone());
        if let Some(prev) = keys.insert(key, k.name.clone()) {
            return Err(err(
                line,
                format!(
                    "kind `{}` has the same endpoint, FileType and root as `{prev}`; inbound \
                     messages could not be told apart",
                    k.name
                ),
            ));
        }
        let dline = line_of(text, k.delivery.span().start);
        let reply = match (k.delivery.get_ref().as_str(), k.reply) {
            ("invoke", Some(r)) => Some((r.schema, r.root)),
            ("invoke", None) => {
                return Err(err(dline, format!("Invoke kind `{}` needs a `reply`", k.name)));
            }
            ("post", None) => None,
            ("post", Some(_)) => {
                return Err(err(dline, format!("Post kind `{}` cannot have a `reply`", k.name)));
            }
            (other, _) => {
                return Err(err(
                    dline,
                    format!("delivery must be \"invoke\" or \"post\", not \"{other}\""),
                ));
            }
        };
        let sline = line_of(text, k.signing.span().start);
        let signing = match k.signing.get_ref().as_str() {
            "none" => "None",
            "optional" => "Optional",
            "required" => "Required",
            other => {
                return Err(err(
                    sline,
                    format!(
                        "signing must be \"none\", \"optional\" or \"required\", not \"{other}\""
                    ),
                ));
            }
        };
        let lline = line_of(text, k.layout.span().start);
        let layout = match k.layout.get_ref().as_str() {
            "body" => "Body",
            "header-and-attachment" => "HeaderAndAttachment",
            "body-and-files" => "BodyAndFiles",
            other => {
                return Err(err(
                    lline,
                    format!(
                        "layout must be \"body\", \"header-and-attachment\" or \"body-and-files\", \
                         not \"{other}\""
                    ),
                ));
            }
        };
        if (layout == "HeaderAndAttachment") != k.attachment.is_some() {
            return Err(err(
                lline,
                format!(
                    "kind `{}`: `attachment` is required with layout \"header-and-attachment\" and \
                     not allowed otherwise",
                    k.name
                ),
            ));
        }
        if reply.is_some() && layout != "Body" {
            return Err(err(lline, format!("Invoke kind `{}` must use layout \"body\"", k.name)));
        }
        kinds.push(Kind {
            name: k.name,
            doc: k.doc,
            endpoint: k.endpoint,
            schema: k.schema,
            root: k.root,
            reply,
            file_type: k.file_type,
            signing: signing.to_owned(),
            layout: layout.to_owned(),
            attachment: k.attachment,
            line,
        });
    }
    Ok(Manifest { types, lenient_roots: lenient_roots.collect(), kinds })
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::parse;

    const KIND: &str = r#"
[[kind]]
name = "DdrReport"
doc = "DDR."
endpoint = "MP_DdrEndpoint"
schema = "ddr.xsd"
root = "Report"
delivery = "post"
signing = "required"
layout = "body"
"#;

    #[test]
    fn accepts_a_post_kind() {
        let m = parse("schemas/endpoints.toml", KIND).unwrap();
        assert_eq!(m.kinds[0].name, "DdrReport");
        assert_eq!(m.kinds[0].line, 2);
    }

    #[test]
    fn reports_invoke_without_reply_at_its_line() {
        let text = KIND.replace("\"post\"", "\"invoke\"");
        let e = parse("schemas/endpoints.toml", &text).unwrap_err().to_string();
        assert_eq!(e, "schemas/endpoints.toml:8: Invoke kind `DdrReport` needs a `reply`");
    }

    #[test]
    fn reports_duplicate_dispatch_key() {
        let text = format!("{KIND}{}", KIND.replace("DdrReport", "Other"));
        let e = parse("schemas/endpoints.toml", &text).unwrap_err().to_string();
        assert!(
            e.starts_with("schemas/endpoints.toml:12: kind `Other` has the same endpoint"),
            "{e}"
        );
    }

    #[test]
    fn reports_unknown_keys_with_a_line() {
        let text = format!("{KIND}colour = \"red\"\n");
        let e = parse("schemas/endpoints.toml", &text).unwrap_err().to_string();
        assert!(e.starts_with("schemas/endpoints.toml:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }
}
