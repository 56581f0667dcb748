//! cmmp-codegen: turns the cmmp XSD schemas and endpoint manifest into Rust.
//!
//! Called from `model/build.rs`. The pipeline has plain-data seams:
//!
//! 1. `front`: xsd-parser (pinned) parses the schemas, resolves `xs:include`s and interprets
//!    them; the walker maps its types to cmmp's IR ([`ir`]).
//! 2. `manifest`: `schemas/endpoints.toml` is parsed and checked (kinds, value-type mapping).
//! 3. `emit`: the IR becomes `quote!` tokens, checked by `syn` and formatted by prettyplease,
//!    one file per schema plus `kinds.rs`.
//!
//! Errors carry `file:line` and are printed by the build script as `cargo::error=`.
//!
//! ```no_run
//! // model/build.rs
//! let config = cmmp_codegen::Config::new("../schemas", std::env::var("OUT_DIR").unwrap());
//! if let Err(e) = cmmp_codegen::compile(&config) {
//!     println!("cargo::error={e}");
//! }
//! ```

#![forbid(unsafe_code)]

mod emit;
mod error;
mod front;
pub mod ir;
pub mod manifest;
pub mod naming;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::error::{Error, Location};

/// Where the schemas are and where the output goes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding `*.xsd` and `endpoints.toml`.
    pub schema_dir: PathBuf,
    /// Output directory (`OUT_DIR`).
    pub out_dir: PathBuf,
    /// Path of the runtime crate in generated code.
    pub runtime_path: String,
    /// Prefix for file names in diagnostics and provenance lines.
    pub display_dir: String,
}

impl Config {
    /// A configuration with the default runtime path `::cmmp_model` and display prefix
    /// `schemas`.
    pub fn new(schema_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            schema_dir: schema_dir.into(),
            out_dir: out_dir.into(),
            runtime_path: "::cmmp_model".to_owned(),
            display_dir: "schemas".to_owned(),
        }
    }
}

/// Generated files: file name (`ddr.rs`, `kinds.rs`) → contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Files in name order.
    pub files: BTreeMap<String, String>,
    /// Every input file read, for `rerun-if-changed`.
    pub inputs: Vec<PathBuf>,
}

/// Runs the whole pipeline and returns the generated files without writing them.
///
/// # Errors
///
/// The first schema, manifest or I/O problem, with `file:line` where known.
pub fn generate(config: &Config) -> Result<Output, Error> {
    let dir = &config.schema_dir;
    let manifest_path = dir.join("endpoints.toml");
    let manifest_display = format!("{}/endpoints.toml", config.display_dir);
    let manifest_text = read(&manifest_path)?;
    let manifest = manifest::parse(&manifest_display, &manifest_text)?;

    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io { path: dir.display().to_string(), source })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xsd"))
        .collect();
    names.sort();
    let mut files = Vec::new();
    let mut inputs = vec![manifest_path];
    for name in names {
        let path = dir.join(&name);
        let text = read(&path)?;
        files.push(front::SchemaFile {
            display: format!("{}/{name}", config.display_dir),
            name,
            text,
        });
        inputs.push(path);
    }

    // Manifest checks that need the schemas (HS-42).
    for k in &manifest.kinds {
        let mut refs = vec![(&k.schema, &k.root)];
        if let Some((s, r)) = &k.reply {
            refs.push((s, r));
        }
        for (schema, root) in refs {
            let Some(f) = files.iter().find(|f| f.name == *schema) else {
                return Err(Error::at(
                    &manifest_display,
                    k.line,
                    format!("kind `{}`: schema `{schema}` does not exist", k.name),
                ));
            };
            let decl = format!("<xs:element name=\"{root}\"");
            if !f.text.contains(&decl) {
                return Err(Error::at(
                    &manifest_display,
                    k.line,
                    format!("kind `{}`: `{}` has no root element `{root}`", k.name, f.display),
                ));
            }
        }
    }

    let modules = front::load(dir, &files, &manifest)?;
    for k in &manifest.kinds {
        let found = modules
            .iter()
            .any(|m| m.file == k.schema && m.roots.iter().any(|r| r.element == k.root));
        if !found {
            return Err(Error::at(
                &manifest_display,
                k.line,
                format!(
                    "kind `{}`: `{}` is not a global element of `{}`",
                    k.name, k.root, k.schema
                ),
            ));
        }
    }
    let runtime: proc_macro2::TokenStream = config.runtime_path.parse().map_err(|_| {
        Error::File { file: "Config".to_owned(), message: "bad runtime path".to_owned() }
    })?;
    let ctx = emit::Ctx { runtime };

    let mut out = Output { files: BTreeMap::new(), inputs };
    for m in &modules {
        let header = format!(
            "// @generated by cmmp-codegen from {}/{} and {manifest_display}; do not edit.\n",
            config.display_dir, m.file
        );
        let text = emit::render(&header, emit::module_tokens(&ctx, m)).map_err(|message| {
            Error::File { file: format!("{}/{}", config.display_dir, m.file), message }
        })?;
        out.files.insert(format!("{}.rs", m.name), text);
    }
    let header = format!("// @generated by cmmp-codegen from {manifest_display}; do not edit.\n");
    let kinds = emit::render(&header, emit::kinds_file(&ctx, &manifest, &modules))
        .map_err(|message| Error::File { file: manifest_display.clone(), message })?;
    out.files.insert("kinds.rs".to_owned(), kinds);
    Ok(out)
}

/// Runs [`generate`], writes the files into `config.out_dir` (only where they changed) and
/// prints `cargo::rerun-if-changed` for the schema directory and every input.
///
/// # Errors
///
/// As [`generate`], plus I/O errors writing the output.
pub fn compile(config: &Config) -> Result<Output, Error> {
    println!("cargo::rerun-if-changed={}", config.schema_dir.display());
    let out = match generate(config) {
        Ok(out) => out,
        Err(e) => {
            // Still watch every file, so fixing the schema reruns the build script.
            if let Ok(entries) = std::fs::read_dir(&config.schema_dir) {
                for e in entries.flatten() {
                    println!("cargo::rerun-if-changed={}", e.path().display());
                }
            }
            return Err(e);
        }
    };
    for input in &out.inputs {
        println!("cargo::rerun-if-changed={}", input.display());
    }
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|source| Error::Io { path: config.out_dir.display().to_string(), source })?;
    for (name, text) in &out.files {
        let path = config.out_dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)
                .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        }
    }
    if let Ok(dump) = std::env::var("CMMP_CODEGEN_DUMP") {
        let dump = Path::new(&dump);
        std::fs::create_dir_all(dump)
            .map_err(|source| Error::Io { path: dump.display().to_string(), source })?;
        for (name, text) in &out.files {
            let path = dump.join(name);
            std::fs::write(&path, text)
                .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })
}
