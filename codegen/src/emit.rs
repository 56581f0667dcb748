//! IR → `quote!` tokens → checked with `syn` → formatted with prettyplease.
//!
//! Generated code names the runtime as `::cmmp_model::…` (configurable) and spells out its
//! wire behaviour: attribute and element names, write order, which children are kept.

mod kinds;

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

pub(crate) use self::kinds::kinds_file;
use crate::ir::{
    Alt, AltTy, Body, Choice, Field, FieldTy, Item, Module, Occurs, Root, Struct, TypeRef, ValueTy,
    Values,
};
use crate::naming::is_keyword;

/// Emission settings.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Path of the runtime crate, e.g. `::cmmp_model`.
    pub(crate) runtime: TokenStream,
}

/// A field or variable identifier (`r#type` for keywords).
pub(crate) fn ident(name: &str) -> Ident {
    if is_keyword(name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

fn doc_attrs(provenance: &str, doc: &[String]) -> TokenStream {
    let mut lines: Vec<String> = doc.iter().map(|d| format!(" {d}")).collect();
    if !lines.is_empty() {
        lines.push(String::new());
    }
    lines.push(format!(" {provenance}"));
    quote! { #( #[doc = #lines] )* }
}

fn type_path(module: &Module, r: &TypeRef) -> TokenStream {
    let name = ident(&r.name);
    if r.module == module.name {
        quote! { #name }
    } else {
        let m = ident(&r.module);
        quote! { super::#m::#name }
    }
}

fn value_path(ctx: &Ctx, module: &Module, v: &ValueTy) -> TokenStream {
    let rt = &ctx.runtime;
    match v {
        ValueTy::Prim(p) => {
            let p = ident(p);
            quote! { #p }
        }
        ValueTy::Value(name) => {
            let n = ident(name);
            quote! { #rt::value::#n }
        }
        ValueTy::Enum(r) => type_path(module, r),
    }
}

/// The Rust type of a field, before `Option`/`Vec`/`Box` wrapping.
fn field_inner(ctx: &Ctx, module: &Module, f: &Field) -> TokenStream {
    let rt = &ctx.runtime;
    match &f.ty {
        FieldTy::Value(v) => value_path(ctx, module, v),
        FieldTy::Complex(r) | FieldTy::Choice(r, _) => type_path(module, r),
        FieldTy::Any => quote! { #rt::xml::AnyElement },
    }
}

fn wrap(inner: TokenStream, occurs: Occurs, boxed: bool) -> TokenStream {
    let inner = if boxed {
        quote! { Box<#inner> }
    } else {
        inner
    };
    match occurs {
        Occurs::One => inner,
        Occurs::Optional => quote! { Option<#inner> },
        Occurs::Many => quote! { Vec<#inner> },
    }
}

/// Emits the items of one schema module.
pub(crate) fn module_tokens(ctx: &Ctx, module: &Module) -> TokenStream {
    let mut out = TokenStream::new();
    for item in &module.items {
        out.extend(match item {
            Item::Struct(s) => struct_tokens(ctx, module, s),
            Item::Choice(c) => choice_tokens(ctx, module, c),
            Item::Values(v) => values_tokens(ctx, v),
        });
    }
    for root in &module.roots {
        out.extend(root_tokens(ctx, root));
    }
    out
}

fn root_tokens(ctx: &Ctx, root: &Root) -> TokenStream {
    let rt = &ctx.runtime;
    let ty = ident(&root.ty);
    let element = &root.element;
    let accepts = if root.lenient {
        quote! {
            /// Accepts any root element: the protocol says to parse this reply by content.
            fn accepts_root(_name: &[u8]) -> bool {
                true
            }
        }
    } else {
        TokenStream::new()
    };
    quote! {
        impl #rt::Message for #ty {
            const ROOT: &'static str = #element;
            #accepts
        }
    }
}

fn struct_tokens(ctx: &Ctx, module: &Module, s: &Struct) -> TokenStream {
    let rt = &ctx.runtime;
    let name = ident(&s.name);
    let docs = doc_attrs(&s.provenance, &s.doc);

    // Field declarations and the constructor.
    let mut decls = Vec::new();
    let mut params = Vec::new();
    let mut inits = Vec::new();
    for a in &s.attrs {
        let f = ident(&a.field);
        let ty = value_path(ctx, module, &a.ty);
        let doc = field_doc(&format!("Attribute `{}`.", a.xml), &a.doc);
        if a.required {
            decls.push(quote! { #doc pub #f: #ty });
            params.push(quote! { #f: #ty });
            inits.push(quote! { #f });
        } else {
            decls.push(quote! {
                #doc
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub #f: Option<#ty>
            });
            inits.push(quote! { #f: None });
        }
    }
    match &s.body {
        Body::Empty => {}
        Body::Text(v) => {
            let ty = value_path(ctx, module, v);
            decls.push(quote! {
                #[doc = " Text content."]
                pub value: #ty
            });
            params.push(quote! { value: #ty });
            inits.push(quote! { value });
        }
        Body::Elements(fields) => {
            for fld in fields {
                let f = ident(&fld.field);
                let inner = field_inner(ctx, module, fld);
                let ty = wrap(inner.clone(), fld.occurs, fld.boxed);
                let what = match &fld.ty {
                    FieldTy::Any => "Any element (`xs:any`), kept verbatim.".to_owned(),
                    FieldTy::Choice(..) => "Choice of child elements (`xs:choice`).".to_owned(),
                    _ => format!("Element `{}`.", fld.xml),
                };
                let doc = field_doc(&what, &fld.doc);
                match fld.occurs {
                    Occurs::One => {
                        decls.push(quote! { #doc pub #f: #ty });
                        params.push(quote! { #f: #inner });
                        if fld.boxed {
                            inits.push(quote! { #f: Box::new(#f) });
                        } else {
                            inits.push(quote! { #f });
                        }
                    }
                    Occurs::Optional => {
                        decls.push(quote! {
                            #doc
                            #[serde(default, skip_serializing_if = "Option::is_none")]
                            pub #f: #ty
                        });
                        inits.push(quote! { #f: None });
                    }
                    Occurs::Many => {
                        decls.push(quote! {
                            #doc
                            #[serde(default, skip_serializing_if = "Vec::is_empty")]
                            pub #f: #ty
                        });
                        inits.push(quote! { #f: Vec::new() });
                    }
                }
            }
        }
    }
    let (derive_default, ctor) = if params.is_empty() {
        (quote! { Default, }, TokenStream::new())
    } else {
        let doc =
            " Creates the value from its required parts; optional parts are empty.".to_owned();
        (
            TokenStream::new(),
            quote! {
                impl #name {
                    #[doc = #doc]
                    pub fn new(#(#params),*) -> Self {
                        Self { #(#inits),* }
                    }
                }
            },
        )
    };

    let write = write_tokens(ctx, s);
    let read = read_tokens(ctx, module, s);
    quote! {
        #docs
        #[derive(Clone, Debug, #derive_default PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub struct #name {
            #(#decls,)*
        }

        #ctor

        impl #rt::xml::XmlElement for #name {
            fn write_element(&self, name: &str, w: &mut #rt::xml::Writer) {
                #write
            }

            fn read_element(
                r: &mut #rt::xml::Reader<'_>,
                start: &#rt::xml::Start<'_>,
            ) -> Result<Self, #rt::DecodeError> {
                #read
            }
        }
    }
}

fn field_doc(what: &str, doc: &[String]) -> TokenStream {
    let mut lines: Vec<String> = vec![format!(" {what}")];
    for d in doc {
        lines.push(format!(" {d}"));
    }
    quote! { #( #[doc = #lines] )* }
}

fn write_tokens(ctx: &Ctx, s: &Struct) -> TokenStream {
    let rt = &ctx.runtime;
    let mut out = quote! { w.start(name); };
    for a in &s.attrs {
        let f = ident(&a.field);
        let x = &a.xml;
        out.extend(if a.required {
            quote! { w.attr(#x, &self.#f); }
        } else {
            quote! { if let Some(v) = &self.#f { w.attr(#x, v); } }
        });
    }
    match &s.body {
        Body::Empty => {}
        Body::Text(_) => out.extend(quote! { w.text(&self.value); }),
        Body::Elements(fields) => {
            for fld in fields {
                let f = ident(&fld.field);
                let x = &fld.xml;
                let one = |v: TokenStream| -> TokenStream {
                    match &fld.ty {
                        FieldTy::Value(_) => quote! { w.simple(#x, #v); },
                        FieldTy::Complex(_) => {
                            quote! { #rt::xml::XmlElement::write_element(#v, #x, w); }
                        }
                        FieldTy::Choice(..) => quote! { #rt::xml::XmlChoice::write_choice(#v, w); },
                        FieldTy::Any => quote! { #rt::xml::XmlElement::write_element(#v, "", w); },
                    }
                };
                out.extend(match fld.occurs {
                    Occurs::One => one(quote! { &self.#f }),
                    Occurs::Optional => {
                        let body = one(quote! { v });
                        quote! { if let Some(v) = &self.#f { #body } }
                    }
                    Occurs::Many => {
                        let body = one(quote! { v });
                        quote! { for v in &self.#f { #body } }
                    }
                });
            }
        }
    }
    out.extend(quote! { w.end(name); });
    out
}

fn local(field: &str) -> Ident {
    format_ident!("f_{}", field)
}

fn read_tokens(ctx: &Ctx, module: &Module, s: &Struct) -> TokenStream {
    let rt = &ctx.runtime;
    let exact = has_case_collision(s);
    let mut out = TokenStream::new();
    let mut finals = Vec::new();

    // Attributes.
    if !s.attrs.is_empty() {
        let mut branches = Vec::new();
        for a in &s.attrs {
            let l = local(&a.field);
            let x = &a.xml;
            let bx = proc_macro2::Literal::byte_string(a.xml.as_bytes());
            out.extend(quote! { let mut #l = None; });
            let cmp = name_cmp(ctx, exact, quote! { attr_name }, &bx);
            branches.push(quote! {
                if #cmp {
                    #l = Some(r.value(&attr_value).map_err(|e| e.at_attr(#x))?);
                }
            });
            let f = ident(&a.field);
            finals.push(if a.required {
                quote! { #f: #l.ok_or_else(|| r.missing_attribute(#x))? }
            } else {
                quote! { #f: #l }
            });
        }
        let chain = else_if_chain(branches, None);
        out.extend(quote! {
            let mut attrs = start.attrs();
            while let Some((attr_name, attr_value)) = attrs.next_attr(r)? {
                #chain
            }
        });
    }

    match &s.body {
        Body::Empty => out.extend(quote! { r.skip(start)?; }),
        Body::Text(_) => {
            out.extend(quote! {
                let text = r.text(start)?;
                let value = r.value(&text)?;
            });
            finals.push(quote! { value });
        }
        Body::Elements(fields) => {
            let mut branches = Vec::new();
            let mut fallback: Option<TokenStream> = None;
            for fld in fields {
                let l = local(&fld.field);
                let f = ident(&fld.field);
                out.extend(match fld.occurs {
                    Occurs::Many => quote! { let mut #l = Vec::new(); },
                    _ => quote! { let mut #l = None; },
                });
                match &fld.ty {
                    FieldTy::Value(_) | FieldTy::Complex(_) => {
                        let x = &fld.xml;
                        let bx = proc_macro2::Literal::byte_string(fld.xml.as_bytes());
                        let read = match &fld.ty {
                            FieldTy::Value(_) => quote! { r.read_value(&child) },
                            _ => {
                                let ty = field_inner(ctx, module, fld);
                                quote! { <#ty as #rt::xml::XmlElement>::read_element(r, &child) }
                            }
                        };
                        let read = if fld.boxed {
                            quote! { #read.map(Box::new) }
                        } else {
                            read
                        };
                        let cmp = name_cmp(ctx, exact, quote! { child_name }, &bx);
                        branches.push(store(fld.occurs, &l, x, cmp, read));
                    }
                    FieldTy::Choice(r_, alts) => {
                        let ty = type_path(module, r_);
                        for alt in alts {
                            let read = alt_read(ctx, module, &ty, alt);
                            if alt.xml.is_empty() {
                                fallback = Some(store_fallback(fld.occurs, &l, read));
                            } else {
                                let x = &alt.xml;
                                let bx = proc_macro2::Literal::byte_string(alt.xml.as_bytes());
                                let cmp = name_cmp(ctx, exact, quote! { child_name }, &bx);
                                branches.push(store(fld.occurs, &l, x, cmp, read));
                            }
                        }
                    }
                    FieldTy::Any => {
                        if fallback.is_none() {
                            let read = quote! {
                                <#rt::xml::AnyElement as #rt::xml::XmlElement>::read_element(r, &child)
                            };
                            fallback = Some(store_fallback(fld.occurs, &l, read));
                        }
                    }
                }
                let name_for_missing = match &fld.ty {
                    FieldTy::Value(_) | FieldTy::Complex(_) => fld.xml.clone(),
                    FieldTy::Choice(_, alts) => alts
                        .iter()
                        .map(|a| if a.xml.is_empty() { "any element" } else { a.xml.as_str() })
                        .collect::<Vec<_>>()
                        .join(" | "),
                    FieldTy::Any => "any element".to_owned(),
                };
                finals.push(match fld.occurs {
                    Occurs::One => {
                        quote! { #f: #l.ok_or_else(|| r.missing_element(#name_for_missing))? }
                    }
                    _ => quote! { #f: #l },
                });
            }
            let fallback = fallback.unwrap_or_else(|| quote! { r.skip(&child)?; });
            let bind = if branches.is_empty() {
                TokenStream::new()
            } else {
                quote! { let child_name = child.name(); }
            };
            let chain = else_if_chain(branches, Some(fallback));
            out.extend(quote! {
                while let Some(child) = r.next_child(start)? {
                    #bind
                    #chain
                }
            });
        }
    }
    quote! {
        #out
        Ok(Self { #(#finals),* })
    }
}

/// The name test of a decoder branch: exact first, then ASCII case-insensitive (the SDK and
/// MP match names case-insensitively: `Ack`/`ACK`, `HOOK2`), unless two names of the type
/// differ only by case.
fn name_cmp(ctx: &Ctx, exact: bool, name: TokenStream, bx: &proc_macro2::Literal) -> TokenStream {
    let rt = &ctx.runtime;
    if exact {
        quote! { #name == #bx }
    } else {
        quote! { #rt::xml::name_eq(#name, #bx) }
    }
}

fn has_case_collision(s: &Struct) -> bool {
    let mut names: Vec<String> = s.attrs.iter().map(|a| a.xml.to_ascii_lowercase()).collect();
    let n_attrs = names.len();
    names.sort();
    names.dedup();
    if names.len() != n_attrs {
        return true;
    }
    let mut elems = Vec::new();
    if let Body::Elements(fields) = &s.body {
        for f in fields {
            match &f.ty {
                FieldTy::Choice(_, alts) => elems.extend(
                    alts.iter().filter(|a| !a.xml.is_empty()).map(|a| a.xml.to_ascii_lowercase()),
                ),
                FieldTy::Any => {}
                _ => elems.push(f.xml.to_ascii_lowercase()),
            }
        }
    }
    let n = elems.len();
    elems.sort();
    elems.dedup();
    elems.len() != n
}

/// `if a {..} else if b {..} else {fallback}`; without branches, just the fallback.
fn else_if_chain(branches: Vec<TokenStream>, fallback: Option<TokenStream>) -> TokenStream {
    let mut out = TokenStream::new();
    for (i, b) in branches.into_iter().enumerate() {
        if i > 0 {
            out.extend(quote! { else });
        }
        out.extend(b);
    }
    match fallback {
        Some(fb) if out.is_empty() => fb,
        Some(fb) => quote! { #out else { #fb } },
        None => out,
    }
}

/// A branch that reads child `x` with `read` and stores it in local `l`.
fn store(occurs: Occurs, l: &Ident, x: &str, cmp: TokenStream, read: TokenStream) -> TokenStream {
    match occurs {
        Occurs::Many => quote! {
            if #cmp {
                let position = #l.len() + 1;
                let v = #read.map_err(|e| e.at(#x, Some(position)))?;
                #l.push(v);
            }
        },
        _ => quote! {
            if #cmp {
                if #l.is_some() {
                    return Err(r.duplicate(#x));
                }
                #l = Some(#read.map_err(|e| e.at(#x, None))?);
            }
        },
    }
}

/// The `else` branch that keeps an unknown child (xs:any).
fn store_fallback(occurs: Occurs, l: &Ident, read: TokenStream) -> TokenStream {
    match occurs {
        Occurs::Many => quote! {
            let position = #l.len() + 1;
            let v = #read.map_err(|e| e.at_dynamic(&child.name_str(), Some(position)))?;
            #l.push(v);
        },
        _ => quote! {
            if #l.is_some() {
                r.skip(&child)?;
            } else {
                #l = Some(#read.map_err(|e| e.at_dynamic(&child.name_str(), None))?);
            }
        },
    }
}

fn alt_read(ctx: &Ctx, module: &Module, enum_ty: &TokenStream, alt: &Alt) -> TokenStream {
    let rt = &ctx.runtime;
    let v = ident(&alt.variant);
    match &alt.ty {
        AltTy::Value(_) => quote! { r.read_value(&child).map(#enum_ty::#v) },
        AltTy::Complex(t) => {
            let ty = type_path(module, t);
            quote! {
                <#ty as #rt::xml::XmlElement>::read_element(r, &child)
                    .map(|x| #enum_ty::#v(Box::new(x)))
            }
        }
        AltTy::Any => quote! {
            <#rt::xml::AnyElement as #rt::xml::XmlElement>::read_element(r, &child)
                .map(|x| #enum_ty::#v(Box::new(x)))
        },
    }
}

fn choice_tokens(ctx: &Ctx, module: &Module, c: &Choice) -> TokenStream {
    let rt = &ctx.runtime;
    let name = ident(&c.name);
    let docs = doc_attrs(&c.provenance, &[]);
    let mut variants = Vec::new();
    let mut writes = Vec::new();
    for alt in &c.alts {
        let v = ident(&alt.variant);
        let x = &alt.xml;
        match &alt.ty {
            AltTy::Value(t) => {
                let ty = value_path(ctx, module, t);
                let doc = format!(" Element `{x}`.");
                variants.push(quote! { #[doc = #doc] #v(#ty) });
                writes.push(quote! { Self::#v(v) => { w.simple(#x, v); } });
            }
            AltTy::Complex(t) => {
                let ty = type_path(module, t);
                let doc = format!(" Element `{x}`.");
                variants.push(quote! { #[doc = #doc] #v(Box<#ty>) });
                writes.push(quote! { Self::#v(v) => { #rt::xml::XmlElement::write_element(v.as_ref(), #x, w); } });
            }
            AltTy::Any => {
                variants.push(quote! {
                    #[doc = " Any other element (`xs:any`), kept verbatim."]
                    #v(Box<#rt::xml::AnyElement>)
                });
                writes.push(quote! { Self::#v(v) => { #rt::xml::XmlElement::write_element(v.as_ref(), "", w); } });
            }
        }
    }
    quote! {
        #docs
        #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub enum #name {
            #(#variants,)*
        }

        impl #rt::xml::XmlChoice for #name {
            fn write_choice(&self, w: &mut #rt::xml::Writer) {
                match self {
                    #(#writes)*
                }
            }
        }
    }
}

fn values_tokens(ctx: &Ctx, v: &Values) -> TokenStream {
    let rt = &ctx.runtime;
    let name = ident(&v.name);
    let docs = doc_attrs(&v.provenance, &v.doc);
    let variants = v.values.iter().map(|(lex, var)| {
        let var = ident(var);
        let doc = format!(" `{lex}`.");
        quote! { #[doc = #doc] #var }
    });
    let as_str = v.values.iter().map(|(lex, var)| {
        let var = ident(var);
        quote! { Self::#var => #lex, }
    });
    let exact = v.values.iter().map(|(lex, var)| {
        let var = ident(var);
        quote! { #lex => Self::#var, }
    });
    let folded = v.values.iter().map(|(lex, var)| {
        let var = ident(var);
        quote! { if text.eq_ignore_ascii_case(#lex) { return Ok(Self::#var); } }
    });
    quote! {
        #docs
        ///
        /// Open: a value the schema does not list decodes as `Other` and re-encodes unchanged.
        #[derive(Clone, Debug, Eq, Hash, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub enum #name {
            #(#variants,)*
            /// A value the schema does not list, kept as written.
            Other(String),
        }

        impl #name {
            /// The lexical value as written on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    #(#as_str)*
                    Self::Other(s) => s,
                }
            }
        }

        impl #rt::value::XmlValue for #name {
            fn parse_xml(text: &str) -> Result<Self, #rt::value::ValueError> {
                Ok(match text {
                    #(#exact)*
                    _ => {
                        #(#folded)*
                        Self::Other(text.to_owned())
                    }
                })
            }

            fn write_xml(&self, out: &mut String) {
                out.push_str(self.as_str());
            }

            fn as_xml_str(&self) -> Option<&str> {
                Some(self.as_str())
            }
        }
    }
}

/// Formats tokens as a file with `header` on top.
pub(crate) fn render(header: &str, tokens: TokenStream) -> Result<String, String> {
    let file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("generated code does not parse: {e}"))?;
    Ok(format!("{header}\n{}", prettyplease::unparse(&file)))
}

#[cfg(test)]
mod tests;
