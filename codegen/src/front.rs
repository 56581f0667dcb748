//! The XSD front end: xsd-parser (pinned) parses, resolves includes and interprets the
//! schemas; this module walks its `MetaTypes` into cmmp's IR.
//!
//! This is the only module that names `xsd_parser`. External types it lets through: none.
//! Only the parser and interpreter stages of xsd-parser run; its optimizer, generator and
//! renderers are not used (field notes §6.3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use xsd_parser::config::{ParserFlags, Schema};
use xsd_parser::models::meta::{
    BuildInMeta, ElementMetaVariant, GroupMeta, MetaType, MetaTypeVariant, MetaTypes,
};
use xsd_parser::models::schema::MaxOccurs;
use xsd_parser::models::schema::xs::Use;
use xsd_parser::models::{IdentType, TypeIdent};
use xsd_parser::{Config, exec_interpreter, exec_parser};

use crate::error::{Error, line_of_name};
use crate::ir::{
    Alt, AltTy, Attr, Body, Choice, Field, FieldTy, Item, Module, Occurs, Root, Struct, TypeRef,
    ValueTy, Values,
};
use crate::manifest::Manifest;
use crate::naming::{field_name, module_name, type_name};

/// A schema file handed to the front end.
pub(crate) struct SchemaFile {
    /// File name, e.g. `ddr.xsd`.
    pub(crate) name: String,
    /// Display path, e.g. `schemas/ddr.xsd`.
    pub(crate) display: String,
    /// File text (for line numbers in diagnostics).
    pub(crate) text: String,
}

/// Reads `files` (all in `dir`) and returns one IR module per schema file that defines types.
pub(crate) fn load(
    dir: &Path,
    files: &[SchemaFile],
    manifest: &Manifest,
) -> Result<Vec<Module>, Error> {
    let mut config = Config::default();
    config.parser.flags |= ParserFlags::RESOLVE_INCLUDES;
    for f in files {
        config.parser.schemas.push(Schema::File(dir.join(&f.name)));
    }
    let schemas = exec_parser(config.parser).map_err(|e| front_error(files, &e.to_string()))?;
    let types = exec_interpreter(config.interpreter, &schemas)
        .map_err(|e| front_error(files, &e.to_string()))?;

    let mut schema_files = BTreeMap::new();
    for (id, info) in schemas.schemas() {
        let Some(name) = info
            .location
            .as_ref()
            .and_then(|u| u.path_segments().and_then(|mut s| s.next_back()).map(str::to_owned))
        else {
            continue;
        };
        if let Some(f) = files.iter().find(|f| f.name == name) {
            schema_files.insert(*id, f);
        }
    }

    let mut w = Walker {
        types: &types,
        manifest,
        schema_files: &schema_files,
        done: BTreeMap::new(),
        taken: BTreeSet::new(),
        items: BTreeMap::new(),
        roots: BTreeMap::new(),
        stack: Vec::new(),
    };
    w.reserve_named();
    for f in files {
        for (ident, ty) in &types.items {
            if ident.type_ == IdentType::Element
                && ident.name.is_named()
                && schema_files.get(&ident.schema).is_some_and(|s| s.name == f.name)
            {
                w.root(ident, ty, f)?;
            }
        }
    }
    let mut modules = Vec::new();
    for f in files {
        let name = module_name(&f.name);
        let items = w.items.remove(&name).unwrap_or_default();
        let roots = w.roots.remove(&name).unwrap_or_default();
        if !items.is_empty() {
            modules.push(Module { name, file: f.name.clone(), items, roots });
        }
    }
    Ok(modules)
}

/// Maps an error of the front end to the schema it mentions, with a line where possible.
fn front_error(files: &[SchemaFile], message: &str) -> Error {
    for f in files {
        if message.contains(&f.name) {
            return Error::File { file: f.display.clone(), message: message.to_owned() };
        }
    }
    // xsd-parser names components as `Type(schema=0, ns=1, name=NoSuchType)`.
    if let Some(i) = message.find("name=") {
        let rest = &message[i + 5..];
        let name = &rest[..rest.find([')', ',', ' ']).unwrap_or(rest.len())];
        let what = if message.contains("Unknown type") {
            format!("unknown type `{name}` ({message})")
        } else {
            message.to_owned()
        };
        for f in files {
            let needle = format!("type=\"{name}\"");
            if let Some(pos) = f.text.find(&needle) {
                return Error::at(&f.display, crate::error::line_of(&f.text, pos), what);
            }
            let line = line_of_name(&f.text, name);
            if line > 0 {
                return Error::at(&f.display, line, what);
            }
        }
    }
    // Name the first schema that contains a quoted name from the message.
    for quoted in message.split(['"', '`', '\'']).skip(1).step_by(2) {
        for f in files {
            let line = line_of_name(&f.text, quoted);
            if line > 0 {
                return Error::at(&f.display, line, message.to_owned());
            }
        }
    }
    Error::File { file: "schemas".to_owned(), message: message.to_owned() }
}

struct Walker<'a> {
    types: &'a MetaTypes,
    manifest: &'a Manifest,
    schema_files: &'a BTreeMap<xsd_parser::models::schema::SchemaId, &'a SchemaFile>,
    /// Types already mapped (or being mapped).
    done: BTreeMap<TypeIdent, TypeRef>,
    /// `(module, name)` pairs in use.
    taken: BTreeSet<(String, String)>,
    items: BTreeMap<String, Vec<Item>>,
    roots: BTreeMap<String, Vec<Root>>,
    /// Complex types being built (for recursion).
    stack: Vec<TypeIdent>,
}

impl<'a> Walker<'a> {
    fn file(&self, ident: &TypeIdent) -> Option<&SchemaFile> {
        self.schema_files.get(&ident.schema).copied()
    }

    fn module_of(&self, ident: &TypeIdent) -> String {
        self.file(ident).map_or_else(|| "schemas".to_owned(), |f| module_name(&f.name))
    }

    fn display_of(&self, ident: &TypeIdent) -> String {
        self.file(ident).map_or_else(|| "schemas".to_owned(), |f| f.display.clone())
    }

    fn err(&self, ident: &TypeIdent, name: &str, message: String) -> Error {
        match self.file(ident) {
            Some(f) => Error::at(&f.display, line_of_name(&f.text, name), message),
            None => Error::File { file: "schemas".to_owned(), message },
        }
    }

    /// Reserves the names of named complex types and enumerations first, so that anonymous
    /// types never take them.
    fn reserve_named(&mut self) {
        for (ident, ty) in &self.types.items {
            if ident.type_ == IdentType::Type
                && ident.name.is_named()
                && self.file(ident).is_some()
                && matches!(
                    ty.variant,
                    MetaTypeVariant::ComplexType(_) | MetaTypeVariant::Enumeration(_)
                )
            {
                let module = self.module_of(ident);
                self.taken.insert((module, type_name(ident.name.as_str())));
            }
        }
    }

    fn alloc(&mut self, module: &str, preferred: &str, parent: Option<&str>) -> String {
        let mut candidates = vec![preferred.to_owned()];
        if let Some(p) = parent {
            candidates.push(format!("{p}{preferred}"));
        }
        for c in candidates {
            if self.taken.insert((module.to_owned(), c.clone())) {
                return c;
            }
        }
        let base = parent.map_or_else(|| preferred.to_owned(), |p| format!("{p}{preferred}"));
        (2..)
            .map(|i| format!("{base}{i}"))
            .find(|c| self.taken.insert((module.to_owned(), c.clone())))
            .unwrap_or(base)
    }

    fn push_item(&mut self, module: &str, item: Item) {
        self.items.entry(module.to_owned()).or_default().push(item);
    }

    /// Follows references (element → element type, typedefs) to the defining type.
    fn resolve(&self, ident: &TypeIdent) -> Option<(TypeIdent, &'a MetaType)> {
        let types: &'a MetaTypes = self.types;
        let mut cur = types.items.get_key_value(ident)?.0;
        for _ in 0..32 {
            let ty = types.items.get(cur)?;
            match &ty.variant {
                MetaTypeVariant::Reference(r) if r.is_single() => cur = &r.type_,
                _ => return Some((cur.clone(), ty)),
            }
        }
        None
    }

    fn root(
        &mut self,
        element: &TypeIdent,
        _ty: &MetaType,
        file: &SchemaFile,
    ) -> Result<(), Error> {
        let name = element.name.as_str().to_owned();
        let Some((ident, ty)) = self.resolve(element) else {
            return Err(self.err(
                element,
                &name,
                format!("element `{name}` has no resolvable type"),
            ));
        };
        if !matches!(ty.variant, MetaTypeVariant::ComplexType(_)) {
            return Err(self.err(
                element,
                &name,
                format!("root element `{name}` must have a complex type"),
            ));
        }
        let provenance = format!("Element `{name}` ({}).", file.display);
        let r = self.complex(&ident, &name, None, provenance, &ty.documentation)?;
        let lenient =
            self.manifest.lenient_roots.iter().any(|(s, root)| *s == file.name && *root == name);
        let module = r.module.clone();
        let roots = self.roots.entry(module).or_default();
        if roots.iter().any(|x| x.ty == r.name) {
            return Err(self.err(
                element,
                &name,
                format!("root element `{name}` shares its type `{}` with another root", r.name),
            ));
        }
        roots.push(Root { element: name, ty: r.name, lenient });
        Ok(())
    }

    /// Maps a complex type (named, or the anonymous type of an element).
    fn complex(
        &mut self,
        ident: &TypeIdent,
        xml_name: &str,
        parent: Option<&str>,
        provenance: String,
        documentation: &[String],
    ) -> Result<TypeRef, Error> {
        if let Some(r) = self.done.get(ident) {
            return Ok(r.clone());
        }
        let module = self.module_of(ident);
        let name = if ident.type_ == IdentType::Type && ident.name.is_named() {
            type_name(ident.name.as_str())
        } else {
            self.alloc(&module, &type_name(xml_name), parent)
        };
        let r = TypeRef { module: module.clone(), name: name.clone() };
        self.done.insert(ident.clone(), r.clone());
        let Some(MetaTypeVariant::ComplexType(c)) = self.types.items.get(ident).map(|t| &t.variant)
        else {
            return Err(self.err(ident, xml_name, format!("`{xml_name}` is not a complex type")));
        };
        self.stack.push(ident.clone());

        let mut attrs = Vec::new();
        for a in c.attributes.iter() {
            let xml = a.ident.name.as_str().to_owned();
            let xsd_parser::models::meta::AttributeMetaVariant::Type(t) = &a.variant else {
                return Err(self.err(
                    ident,
                    "anyAttribute",
                    format!("`{xml_name}`: xs:anyAttribute is not supported"),
                ));
            };
            if a.use_ == Use::Prohibited {
                continue;
            }
            let ty = self.value_ty(t, &xml)?;
            attrs.push(Attr {
                field: field_name(&xml),
                xml,
                ty,
                required: a.use_ == Use::Required,
                doc: clean_doc(&a.documentation),
            });
        }

        let body = match &c.content {
            None => Body::Empty,
            Some(content) => match self.types.items.get(content).map(|t| &t.variant) {
                Some(MetaTypeVariant::Sequence(g) | MetaTypeVariant::All(g)) => {
                    let mut fields = Vec::new();
                    self.group_fields(g, &name, &module, &provenance, &mut fields)?;
                    Body::Elements(fields)
                }
                Some(MetaTypeVariant::Choice(g)) => {
                    let occurs = occurs(c.min_occurs, c.max_occurs);
                    let field = self.choice_field(g, occurs, &name, &module, &provenance, 1)?;
                    Body::Elements(vec![field])
                }
                Some(_) => Body::Text(self.value_ty(content, xml_name)?),
                None => {
                    return Err(self.err(
                        ident,
                        xml_name,
                        format!("`{xml_name}`: unresolved content"),
                    ));
                }
            },
        };
        self.stack.pop();
        let mut fields_and_attrs: Vec<&mut String> =
            attrs.iter_mut().map(|a| &mut a.field).collect();
        let mut body = body;
        if let Body::Elements(fields) = &mut body {
            fields_and_attrs.extend(fields.iter_mut().map(|f| &mut f.field));
        }
        dedupe_fields(fields_and_attrs);
        self.push_item(
            &module,
            Item::Struct(Struct { name, provenance, doc: clean_doc(documentation), attrs, body }),
        );
        Ok(r)
    }

    fn group_fields(
        &mut self,
        g: &GroupMeta,
        parent: &str,
        module: &str,
        provenance: &str,
        fields: &mut Vec<Field>,
    ) -> Result<(), Error> {
        let mut choices = 0;
        for el in g.elements.iter() {
            let occ = occurs(el.min_occurs, el.max_occurs);
            let xml = el.ident.name.as_str().to_owned();
            match &el.variant {
                ElementMetaVariant::Text => {}
                ElementMetaVariant::Any { .. } => fields.push(Field {
                    xml: String::new(),
                    field: "any".to_owned(),
                    ty: FieldTy::Any,
                    occurs: occ,
                    boxed: false,
                    doc: clean_doc(&el.documentation),
                }),
                ElementMetaVariant::Type { type_, .. } => {
                    let Some((rid, rty)) = self.resolve(type_) else {
                        return Err(Error::at(
                            provenance_file(provenance),
                            0,
                            format!("`{parent}/{xml}`: unresolved type"),
                        ));
                    };
                    match &rty.variant {
                        MetaTypeVariant::Choice(cg) => {
                            choices += 1;
                            fields.push(
                                self.choice_field(cg, occ, parent, module, provenance, choices)?,
                            );
                        }
                        MetaTypeVariant::Sequence(sg) if occ == Occurs::One => {
                            self.group_fields(sg, parent, module, provenance, fields)?;
                        }
                        MetaTypeVariant::Sequence(_) | MetaTypeVariant::All(_) => {
                            return Err(self.err(
                                &rid,
                                &xml,
                                format!(
                                    "`{parent}`: an optional or repeated nested sequence is not \
                                     supported; use a named complex type"
                                ),
                            ));
                        }
                        MetaTypeVariant::ComplexType(_) => {
                            let boxed = self.stack.contains(&rid) && occ != Occurs::Many;
                            let prov = child_provenance(provenance, &xml);
                            let docs = rty.documentation.clone();
                            let r = self.complex(&rid, &xml, Some(parent), prov, &docs)?;
                            fields.push(Field {
                                field: field_name(&xml),
                                xml,
                                ty: FieldTy::Complex(r),
                                occurs: occ,
                                boxed,
                                doc: clean_doc(&el.documentation),
                            });
                        }
                        _ => {
                            let ty = self.value_ty(type_, &xml)?;
                            fields.push(Field {
                                field: field_name(&xml),
                                xml,
                                ty: FieldTy::Value(ty),
                                occurs: occ,
                                boxed: false,
                                doc: clean_doc(&el.documentation),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn choice_field(
        &mut self,
        g: &GroupMeta,
        occ: Occurs,
        parent: &str,
        module: &str,
        provenance: &str,
        index: usize,
    ) -> Result<Field, Error> {
        let suffix = if index > 1 { index.to_string() } else { String::new() };
        let name = self.alloc(module, &format!("{parent}Content{suffix}"), None);
        let mut alts = Vec::new();
        for el in g.elements.iter() {
            let xml = el.ident.name.as_str().to_owned();
            if occurs(el.min_occurs, el.max_occurs) != Occurs::One {
                return Err(Error::at(
                    provenance_file(provenance),
                    0,
                    format!("`{parent}`: choice alternative `{xml}` must occur exactly once"),
                ));
            }
            let alt = match &el.variant {
                ElementMetaVariant::Text => continue,
                ElementMetaVariant::Any { .. } => {
                    Alt { xml: String::new(), variant: "Other".to_owned(), ty: AltTy::Any }
                }
                ElementMetaVariant::Type { type_, .. } => {
                    let Some((rid, rty)) = self.resolve(type_) else {
                        return Err(Error::at(
                            provenance_file(provenance),
                            0,
                            format!("`{parent}/{xml}`: unresolved type"),
                        ));
                    };
                    let ty = match &rty.variant {
                        MetaTypeVariant::ComplexType(_) => {
                            let prov = child_provenance(provenance, &xml);
                            let docs = rty.documentation.clone();
                            AltTy::Complex(self.complex(&rid, &xml, Some(parent), prov, &docs)?)
                        }
                        MetaTypeVariant::Choice(_)
                        | MetaTypeVariant::Sequence(_)
                        | MetaTypeVariant::All(_) => {
                            return Err(self.err(
                                &rid,
                                &xml,
                                format!("`{parent}`: only elements and xs:any may be choice alternatives"),
                            ));
                        }
                        _ => AltTy::Value(self.value_ty(type_, &xml)?),
                    };
                    Alt { variant: type_name(&xml), xml, ty }
                }
            };
            alts.push(alt);
        }
        self.push_item(
            module,
            Item::Choice(Choice {
                name: name.clone(),
                provenance: format!("Choice in {}", provenance.trim_end_matches('.'))
                    .replace(") (", " ")
                    + ".",
                alts: alts.clone(),
            }),
        );
        let field =
            if suffix.is_empty() { "content".to_owned() } else { format!("content{suffix}") };
        Ok(Field {
            xml: String::new(),
            field,
            ty: FieldTy::Choice(TypeRef { module: module.to_owned(), name }, alts),
            occurs: occ,
            boxed: false,
            doc: Vec::new(),
        })
    }

    /// Maps a simple type to a value type.
    fn value_ty(&mut self, ident: &TypeIdent, context: &str) -> Result<ValueTy, Error> {
        if let Some(r) = self.done.get(ident) {
            return Ok(ValueTy::Enum(r.clone()));
        }
        let name = ident.name.as_str();
        if self.file(ident).is_some()
            && let Some(v) = self.manifest.types.get(name)
        {
            return Ok(ValueTy::Value(v.clone()));
        }
        if self.is_xs(ident) {
            return xs_builtin(name).ok_or_else(|| {
                self.err(
                    ident,
                    context,
                    format!("`{context}`: XSD type xs:{name} is not supported"),
                )
            });
        }
        let Some(ty) = self.types.items.get(ident) else {
            return Err(self.err(ident, context, format!("`{context}`: unknown type `{name}`")));
        };
        match &ty.variant {
            MetaTypeVariant::BuildIn(b) => Ok(match b {
                BuildInMeta::Bool => ValueTy::Prim("bool"),
                BuildInMeta::String | BuildInMeta::Str => ValueTy::Prim("String"),
                BuildInMeta::U8 => ValueTy::Prim("u8"),
                BuildInMeta::U16 => ValueTy::Prim("u16"),
                BuildInMeta::U32 => ValueTy::Prim("u32"),
                BuildInMeta::U64 | BuildInMeta::Usize => ValueTy::Prim("u64"),
                BuildInMeta::I8 => ValueTy::Prim("i8"),
                BuildInMeta::I16 => ValueTy::Prim("i16"),
                BuildInMeta::I32 => ValueTy::Prim("i32"),
                BuildInMeta::I64 | BuildInMeta::Isize => ValueTy::Prim("i64"),
                _ => {
                    return Err(self.err(
                        ident,
                        context,
                        format!("`{context}`: unsupported built-in type"),
                    ));
                }
            }),
            MetaTypeVariant::Reference(r) => {
                let t = r.type_.clone();
                self.value_ty(&t, context)
            }
            MetaTypeVariant::SimpleType(s) if !s.is_list => {
                let t = s.base.clone();
                self.value_ty(&t, context)
            }
            MetaTypeVariant::Enumeration(e) => {
                let module = self.module_of(ident);
                let rust = if ident.name.is_named() {
                    type_name(name)
                } else {
                    self.alloc(&module, &format!("{}Value", type_name(context)), None)
                };
                let r = TypeRef { module: module.clone(), name: rust.clone() };
                self.done.insert(ident.clone(), r.clone());
                let mut values = Vec::new();
                let mut seen = BTreeSet::new();
                for v in e.variants.iter() {
                    let lexical = v.ident.name.as_str().to_owned();
                    let mut variant = type_name(&lexical);
                    if variant == "Other" {
                        variant = "OtherValue".to_owned();
                    }
                    while !seen.insert(variant.clone()) {
                        variant.push('_');
                    }
                    values.push((lexical, variant));
                }
                let what = if ident.name.is_named() { "Simple type" } else { "Enumeration of" };
                let provenance = format!("{what} `{name}` ({}).", self.display_of(ident));
                self.push_item(
                    &module,
                    Item::Values(Values {
                        name: rust,
                        provenance,
                        doc: clean_doc(&ty.documentation),
                        values,
                    }),
                );
                Ok(ValueTy::Enum(r))
            }
            _ => Err(self.err(
                ident,
                name,
                format!(
                    "`{context}`: type `{name}` is not supported here (unions and lists must be \
                     mapped to a value type in the manifest's [types])"
                ),
            )),
        }
    }

    fn is_xs(&self, ident: &TypeIdent) -> bool {
        self.types
            .modules
            .get(&ident.ns)
            .and_then(|m| m.namespace.as_ref())
            .is_some_and(|ns| ns.to_string() == XS_NAMESPACE)
    }
}

const XS_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema";

fn xs_builtin(name: &str) -> Option<ValueTy> {
    Some(match name {
        "string" | "normalizedString" | "token" | "anyURI" | "NMTOKEN" | "Name" | "NCName"
        | "language" | "ID" | "IDREF" | "anySimpleType" | "base64Binary" => ValueTy::Prim("String"),
        "boolean" => ValueTy::Prim("bool"),
        "byte" => ValueTy::Prim("i8"),
        "short" => ValueTy::Prim("i16"),
        "int" => ValueTy::Prim("i32"),
        "long" => ValueTy::Prim("i64"),
        "unsignedByte" => ValueTy::Prim("u8"),
        "unsignedShort" => ValueTy::Prim("u16"),
        "unsignedInt" => ValueTy::Prim("u32"),
        "unsignedLong" => ValueTy::Prim("u64"),
        "hexBinary" => ValueTy::Value("HexBytes".to_owned()),
        _ => return None,
    })
}

fn occurs(min: usize, max: MaxOccurs) -> Occurs {
    match max {
        MaxOccurs::Bounded(n) if n <= 1 => {
            if min == 0 {
                Occurs::Optional
            } else {
                Occurs::One
            }
        }
        _ => Occurs::Many,
    }
}

/// ``Element `A` (schemas/x.xsd).`` + `B` → ``Element `A/B` (schemas/x.xsd).``
fn child_provenance(parent: &str, child: &str) -> String {
    match parent.find("` (") {
        Some(i) => format!("{}/{child}{}", &parent[..i], &parent[i..]),
        None => parent.to_owned(),
    }
}

fn provenance_file(provenance: &str) -> &str {
    provenance
        .rsplit_once(" (")
        .map_or("schemas", |(_, rest)| rest.trim_end_matches(").").trim_end_matches(')'))
}

/// Gives colliding field names (attribute `Name` and element `Name`) distinct suffixes.
fn dedupe_fields(fields: Vec<&mut String>) {
    let mut seen = BTreeSet::new();
    for f in fields {
        while !seen.insert(f.clone()) {
            f.push_str("_2");
        }
    }
}

/// Cleans `xs:documentation` for rustdoc: trimmed lines (no indented code blocks), no link
/// brackets, no blank runs.
pub(crate) fn clean_doc(docs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for d in docs {
        let text = d.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            out.push(text.replace('[', "\\[").replace(']', "\\]"));
        }
    }
    out
}
