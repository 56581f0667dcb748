//! The Rust-shaped intermediate representation between the XSD front end and the emitter.
//!
//! Plain data: unit tests build it by hand and compare emitted tokens.

/// One generated module: the types defined by one schema file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Module {
    /// Rust module name, e.g. `report_common`.
    pub name: String,
    /// Schema file name, e.g. `report-common.xsd`.
    pub file: String,
    /// Types in definition order.
    pub items: Vec<Item>,
    /// Root elements defined by this schema.
    pub roots: Vec<Root>,
}

/// A global element: a document root, implemented as `Message` on its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    /// Element name, e.g. `Report`.
    pub element: String,
    /// Rust type in this module.
    pub ty: String,
    /// The decoder accepts any root element name.
    pub lenient: bool,
}

/// A generated type.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A complex type.
    Struct(Struct),
    /// An `xs:choice`.
    Choice(Choice),
    /// An `xs:enumeration` simple type (open).
    Values(Values),
}

/// A complex type.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Rust name.
    pub name: String,
    /// Provenance line, e.g. ``Element `Report` (schemas/ddr.xsd).``
    pub provenance: String,
    /// Cleaned `xs:documentation` lines.
    pub doc: Vec<String>,
    /// Attributes in declaration order.
    pub attrs: Vec<Attr>,
    /// Content.
    pub body: Body,
}

/// Content of a complex type.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No content.
    Empty,
    /// Text content (`xs:simpleContent`), as field `value`.
    Text(ValueTy),
    /// Child elements in declaration (write) order.
    Elements(Vec<Field>),
}

/// An attribute field.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// XML name.
    pub xml: String,
    /// Rust field name.
    pub field: String,
    /// Value type.
    pub ty: ValueTy,
    /// `use="required"`.
    pub required: bool,
    /// Documentation lines.
    pub doc: Vec<String>,
}

/// A child-element field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// XML element name (empty for `xs:any` and choices).
    pub xml: String,
    /// Rust field name.
    pub field: String,
    /// Type.
    pub ty: FieldTy,
    /// Occurrence.
    pub occurs: Occurs,
    /// Boxed (recursive types).
    pub boxed: bool,
    /// Documentation lines.
    pub doc: Vec<String>,
}

/// Type of a child-element field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldTy {
    /// A text-only element holding a value.
    Value(ValueTy),
    /// A complex type.
    Complex(TypeRef),
    /// An `xs:choice` enum and its alternatives.
    Choice(TypeRef, Vec<Alt>),
    /// `xs:any`: kept as `AnyElement`.
    Any,
}

/// How often a field occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurs {
    /// Exactly once.
    One,
    /// At most once.
    Optional,
    /// Any number of times.
    Many,
}

/// An `xs:choice`.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Rust name.
    pub name: String,
    /// Provenance line.
    pub provenance: String,
    /// Alternatives.
    pub alts: Vec<Alt>,
}

/// One alternative of a choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Alt {
    /// XML element name (empty for `xs:any`).
    pub xml: String,
    /// Rust variant name.
    pub variant: String,
    /// Type.
    pub ty: AltTy,
}

/// Type of a choice alternative.
#[derive(Debug, Clone, PartialEq)]
pub enum AltTy {
    /// A text-only element.
    Value(ValueTy),
    /// A complex type (boxed).
    Complex(TypeRef),
    /// `xs:any` (boxed `AnyElement`).
    Any,
}

/// An open enumeration.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// Rust name.
    pub name: String,
    /// Provenance line.
    pub provenance: String,
    /// Documentation lines.
    pub doc: Vec<String>,
    /// `(lexical value, Rust variant)` pairs.
    pub values: Vec<(String, String)>,
}

/// A reference to a generated type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypeRef {
    /// Module name.
    pub module: String,
    /// Type name.
    pub name: String,
}

/// A simple value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueTy {
    /// A Rust primitive or `String`.
    Prim(&'static str),
    /// A runtime value type (`value::SmsId`, …).
    Value(String),
    /// A generated open enumeration.
    Enum(TypeRef),
}
