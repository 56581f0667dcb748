//! Token tests: hand-built IR → emitted code (tonic-prost-build style).

use quote::quote;

use super::{Ctx, module_tokens, render};
use crate::ir::{Attr, Body, Field, FieldTy, Item, Module, Occurs, Root, Struct, ValueTy, Values};

fn ctx() -> Ctx {
    Ctx { runtime: quote! { ::rt } }
}

fn module(items: Vec<Item>, roots: Vec<Root>) -> Module {
    Module { name: "m".into(), file: "m.xsd".into(), items, roots }
}

fn emitted(m: &Module) -> String {
    render("", module_tokens(&ctx(), m)).unwrap()
}

#[test]
fn required_fields_become_constructor_parameters() {
    let s = Struct {
        name: "Ping".into(),
        provenance: "Element `Ping` (schemas/m.xsd).".into(),
        doc: vec![],
        attrs: vec![Attr {
            xml: "Id".into(),
            field: "id".into(),
            ty: ValueTy::Prim("u32"),
            required: true,
            doc: vec![],
        }],
        body: Body::Elements(vec![Field {
            xml: "Note".into(),
            field: "note".into(),
            ty: FieldTy::Value(ValueTy::Prim("String")),
            occurs: Occurs::Optional,
            boxed: false,
            doc: vec![],
        }]),
    };
    let out = emitted(&module(vec![Item::Struct(s)], vec![]));
    assert!(out.contains("pub fn new(id: u32) -> Self"), "{out}");
    assert!(out.contains("Self { id, note: None }"), "{out}");
    assert!(out.contains("w.attr(\"Id\", &self.id);"), "{out}");
    assert!(out.contains("if let Some(v) = &self.note {"), "{out}");
    assert!(out.contains("r.missing_attribute(\"Id\")"), "{out}");
    assert!(!out.contains("Default"), "a type with required parts has no Default: {out}");
}

#[test]
fn all_optional_types_derive_default_and_have_no_constructor() {
    let s = Struct {
        name: "Empty".into(),
        provenance: "Element `Empty` (schemas/m.xsd).".into(),
        doc: vec![],
        attrs: vec![],
        body: Body::Empty,
    };
    let out = emitted(&module(vec![Item::Struct(s)], vec![]));
    assert!(out.contains("Default"), "{out}");
    assert!(!out.contains("pub fn new"), "{out}");
    assert!(out.contains("r.skip(start)?;"), "{out}");
}

#[test]
fn enumerations_are_open_and_fold_case() {
    let v = Values {
        name: "Mode".into(),
        provenance: "Simple type `Mode` (schemas/m.xsd).".into(),
        doc: vec![],
        values: vec![("Sync".into(), "Sync".into()), ("Async".into(), "Async".into())],
    };
    let out = emitted(&module(vec![Item::Values(v)], vec![]));
    assert!(out.contains("Other(String)"), "{out}");
    assert!(out.contains("if text.eq_ignore_ascii_case(\"Async\")"), "{out}");
}

#[test]
fn lenient_roots_accept_any_element_name() {
    let s = Struct {
        name: "Reply".into(),
        provenance: "Element `Reply` (schemas/m.xsd).".into(),
        doc: vec![],
        attrs: vec![],
        body: Body::Empty,
    };
    let root = Root { element: "SiteInfoReply".into(), ty: "Reply".into(), lenient: true };
    let out = emitted(&module(vec![Item::Struct(s)], vec![root]));
    assert!(out.contains("const ROOT: &'static str = \"SiteInfoReply\";"), "{out}");
    assert!(out.contains("fn accepts_root(_name: &[u8]) -> bool {\n        true"), "{out}");
}
