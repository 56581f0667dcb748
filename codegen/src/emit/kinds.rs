//! `kinds.rs`: message kinds from the manifest, inbound dispatch, and the document index.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::{Ctx, ident};
use crate::ir::Module;
use crate::manifest::Manifest;
use crate::naming::{module_name, type_name};

/// Resolves `(schema file, root element)` to `(module, Rust type)`.
fn root_type<'m>(modules: &'m [Module], schema: &str, root: &str) -> Option<(&'m str, &'m str)> {
    let m = modules.iter().find(|m| m.file == schema)?;
    let r = m.roots.iter().find(|r| r.element == root)?;
    Some((m.name.as_str(), r.ty.as_str()))
}

fn path(module: &str, ty: &str) -> TokenStream {
    let m = ident(module);
    let t = ident(ty);
    quote! { super::#m::#t }
}

/// Emits the kinds file. Roots were checked to exist by the caller.
pub(crate) fn kinds_file(ctx: &Ctx, manifest: &Manifest, modules: &[Module]) -> TokenStream {
    let rt = &ctx.runtime;
    let mut out = TokenStream::new();
    let mut inbound_variants = Vec::new();
    let mut inbound_arms = Vec::new();
    let mut inbound_names = Vec::new();
    let mut inbound_layouts = Vec::new();

    for k in &manifest.kinds {
        let Some((bm, bt)) = root_type(modules, &k.schema, &k.root) else { continue };
        let name = ident(&k.name);
        let body = path(bm, bt);
        let endpoint = &k.endpoint;
        let kind_name = &k.name;
        let signing = ident(&k.signing);
        let file_type = match &k.file_type {
            Some(ft) => quote! { const FILE_TYPE: Option<&'static str> = Some(#ft); },
            None => TokenStream::new(),
        };
        let layout = match (k.layout.as_str(), &k.attachment) {
            ("HeaderAndAttachment", Some(a)) => quote! {
                const LAYOUT: #rt::Layout = #rt::Layout::HeaderAndAttachment { attachment: #a };
            },
            ("BodyAndFiles", _) => {
                quote! { const LAYOUT: #rt::Layout = #rt::Layout::BodyAndFiles; }
            }
            _ => TokenStream::new(),
        };
        let ft_words =
            k.file_type.as_ref().map(|f| format!(" with `FileType` `{f}`")).unwrap_or_default();
        let (doc2, delivery, mode_impl) = match &k.reply {
            Some((rs, rr)) => {
                let Some((rm, rty)) = root_type(modules, rs, rr) else { continue };
                let reply = path(rm, rty);
                (
                    format!(
                        " Invoke kind: [`{bt}`](super::{bm}::{bt}) to `{endpoint}`{ft_words}; replies with [`{rty}`](super::{rm}::{rty})."
                    ),
                    quote! { #rt::Reply<#reply> },
                    quote! {
                        impl #rt::Invoke for #name {
                            type Reply = #reply;
                        }
                    },
                )
            }
            None => (
                format!(
                    " Post kind: [`{bt}`](super::{bm}::{bt}) to `{endpoint}`{ft_words}; no reply."
                ),
                quote! { #rt::NoReply },
                quote! { impl #rt::Post for #name {} },
            ),
        };
        let doc1 = format!(" {}", k.doc);
        let prov = format!(" Kind `{}` (schemas/endpoints.toml).", k.name);
        out.extend(quote! {
            #[doc = #doc1]
            ///
            #[doc = #doc2]
            ///
            #[doc = #prov]
            #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
            pub struct #name(pub #body);

            impl #name {
                /// Wraps a body document.
                pub fn new(body: #body) -> Self {
                    Self(body)
                }
            }

            impl #rt::Endpoint for #name {
                type Body = #body;
                const ENDPOINT: &'static str = #endpoint;
                #file_type
                const SIGNING: #rt::Signing = #rt::Signing::#signing;
                #layout
                const NAME: &'static str = #kind_name;
                type Delivery = #delivery;

                fn body(&self) -> &#body {
                    &self.0
                }

                fn from_body(body: #body) -> Self {
                    Self(body)
                }
            }

            #mode_impl
        });

        let vdoc = format!(" A [`{}`] message.", k.name);
        inbound_variants.push(quote! { #[doc = #vdoc] #name(#name) });
        inbound_names.push(quote! { Self::#name(_) => #kind_name, });
        inbound_layouts.push(quote! { Self::#name(_) => <#name as #rt::Endpoint>::LAYOUT, });
        let ft_check = match &k.file_type {
            Some(ft) => quote! { file_type.is_some_and(|f| f.eq_ignore_ascii_case(#ft)) },
            None => quote! { file_type.is_none() },
        };
        let root = &k.root;
        inbound_arms.push(quote! {
            if endpoint.eq_ignore_ascii_case(#endpoint) && #ft_check && root == #root {
                return <#body as #rt::MessageExt>::from_xml(text).map(|b| Self::#name(#name(b)));
            }
        });
    }

    out.extend(quote! {
        /// A request as an MP receives it: one variant per message kind.
        ///
        /// Built by [`Inbound::decode`] from the `Msg` header's `TargetEndpoint`, its
        /// `FileType` property and the body's root element.
        #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub enum Inbound {
            #(#inbound_variants,)*
        }

        impl Inbound {
            /// Decodes a body for `endpoint` (case-insensitive, as the MP matches it) and
            /// `file_type`.
            ///
            /// # Errors
            ///
            /// `DecodeErrorKind::UnknownKind` when no kind
            /// matches the endpoint, file type and root; otherwise the body's decode error.
            pub fn decode(
                endpoint: &str,
                file_type: Option<&str>,
                text: &str,
            ) -> Result<Self, #rt::DecodeError> {
                let root = #rt::xml::root_name(text)?;
                #(#inbound_arms)*
                Err(#rt::DecodeError::new(
                    #rt::DecodeErrorKind::UnknownKind {
                        endpoint: endpoint.to_owned(),
                        file_type: file_type.map(str::to_owned),
                        root,
                    },
                    0,
                ))
            }

            /// The kind's name, e.g. `DdrReport`.
            pub fn kind_name(&self) -> &'static str {
                match *self {
                    #(#inbound_names)*
                }
            }

            /// How the kind lays out its body and attachments (its `Endpoint::LAYOUT`).
            pub fn layout(&self) -> #rt::Layout {
                match *self {
                    #(#inbound_layouts)*
                }
            }
        }
    });
    out.extend(documents(ctx, modules));
    out
}

/// The `Document` enum: every root of every schema, for tools and the corpus tests.
fn documents(ctx: &Ctx, modules: &[Module]) -> TokenStream {
    let rt = &ctx.runtime;
    let mut variants = Vec::new();
    let mut decode_arms = Vec::new();
    let mut lenient_arms = Vec::new();
    let mut encode_arms = Vec::new();
    let mut list = Vec::new();
    for m in modules {
        let stem = m.file.strip_suffix(".xsd").unwrap_or(&m.file).to_owned();
        for r in &m.roots {
            let v = ident(&format!("{}{}", type_name(&module_name(&m.file)), r.ty));
            let ty = path(&m.name, &r.ty);
            let element = &r.element;
            let doc = format!(" `{element}` of `schemas/{}`.", m.file);
            variants.push(quote! { #[doc = #doc] #v(#ty) });
            decode_arms.push(quote! {
                if schema == #stem && root == #element {
                    return <#ty as #rt::MessageExt>::from_xml(text).map(Self::#v);
                }
            });
            if r.lenient {
                let peers: Vec<&str> =
                    m.roots.iter().filter(|x| x.lenient).map(|x| x.element.as_str()).collect();
                lenient_arms.push(quote! {
                    if schema == #stem && #rt::xml::closest_name(&root, &[#(#peers),*]) == Some(#element) {
                        return <#ty as #rt::MessageExt>::from_xml(text).map(Self::#v);
                    }
                });
            }
            encode_arms.push(quote! { Self::#v(d) => #rt::MessageExt::to_xml(d), });
            let stem_lit = Literal::string(&stem);
            list.push(quote! { (#stem_lit, #element) });
        }
    }
    quote! {
        /// Any document of any schema, by schema file stem (`ddr`, `location`, …).
        #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub enum Document {
            #(#variants,)*
        }

        impl Document {
            /// Every `(schema stem, root element)` pair this model reads.
            pub const ROOTS: &'static [(&'static str, &'static str)] = &[#(#list),*];

            /// Decodes `text` as a document of schema `schema` (file stem), by its root; a
            /// root the schema does not declare goes to the schema's lenient reply type, if any.
            ///
            /// # Errors
            ///
            /// `DecodeErrorKind::UnexpectedRoot` when the
            /// schema has no such root; otherwise the document's decode error.
            pub fn decode(schema: &str, text: &str) -> Result<Self, #rt::DecodeError> {
                let root = #rt::xml::root_name(text)?;
                #(#decode_arms)*
                #(#lenient_arms)*
                Err(#rt::DecodeError::new(
                    #rt::DecodeErrorKind::UnexpectedRoot { expected: "a root of the schema", found: root },
                    0,
                ))
            }

            /// Encodes the document in canonical form.
            ///
            /// # Errors
            ///
            /// As `MessageExt::to_xml`.
            pub fn to_xml(&self) -> Result<String, #rt::EncodeError> {
                match self {
                    #(#encode_arms)*
                }
            }
        }
    }
}
