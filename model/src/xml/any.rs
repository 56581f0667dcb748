//! Content kept from `xs:any`: an element of any name with any attributes and children.

use serde::{Deserialize, Serialize};

use super::{Node, Reader, Start, Writer, XmlElement};
use crate::error::{DecodeError, EncodeError};

/// An element kept verbatim from `xs:any` content (e.g. a WMI class in a hardware inventory
/// `Instance`). Attribute order and child order are preserved; whitespace-only text between
/// child elements is dropped, so documents re-encode in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyElement {
    /// Element name.
    pub name: String,
    /// Attributes in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AnyAttribute>,
    /// Child elements and text in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<AnyNode>,
}

/// An attribute of an [`AnyElement`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyAttribute {
    /// Attribute name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
}

/// A child of an [`AnyElement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnyNode {
    /// A child element.
    Element(AnyElement),
    /// Unescaped text.
    Text(String),
}

impl AnyElement {
    /// Creates an element with no attributes and no children.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), attributes: Vec::new(), children: Vec::new() }
    }

    /// Adds a child element `<name>text</name>` (the shape of a WMI property), builder style.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        let mut child = AnyElement::new(name);
        let text = text.into();
        if !text.is_empty() {
            child.children.push(AnyNode::Text(text));
        }
        self.children.push(AnyNode::Element(child));
        self
    }

    /// Adds an attribute, builder style.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push(AnyAttribute { name: name.into(), value: value.into() });
        self
    }

    /// The concatenated text children (the value of a WMI property element).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.children {
            if let AnyNode::Text(t) = c {
                out.push_str(t);
            }
        }
        out
    }

    /// The child elements named `name`.
    pub fn elements<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s AnyElement> + 's {
        self.children.iter().filter_map(move |c| match c {
            AnyNode::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// Checks that every element and attribute name is a valid XML name, so that writing
    /// cannot produce a malformed document.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidName`] with the first bad name.
    pub fn check_names(&self) -> Result<(), EncodeError> {
        check_name(&self.name)?;
        for a in &self.attributes {
            check_name(&a.name)?;
        }
        for c in &self.children {
            if let AnyNode::Element(e) = c {
                e.check_names()?;
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {
            chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(EncodeError::InvalidName(name.to_owned())) }
}

impl XmlElement for AnyElement {
    /// Writes the element under its own name; `name` is ignored (the element carries it).
    fn write_element(&self, _name: &str, w: &mut Writer) {
        if let Err(e) = self.check_names() {
            w.fail(e);
            return;
        }
        w.start(&self.name);
        for a in &self.attributes {
            w.attr(&a.name, &a.value);
        }
        for c in &self.children {
            match c {
                AnyNode::Element(e) => e.write_element(&e.name, w),
                AnyNode::Text(t) => w.text(t),
            }
        }
        w.end(&self.name);
    }

    fn read_element(r: &mut Reader<'_>, start: &Start<'_>) -> Result<Self, DecodeError> {
        let name = start.name_str().into_owned();
        let mut attributes = Vec::new();
        let mut attrs = start.attrs();
        while let Some((n, v)) = attrs.next_attr(r)? {
            attributes.push(AnyAttribute {
                name: String::from_utf8_lossy(n).into_owned(),
                value: v.into_owned(),
            });
        }
        let mut children = Vec::new();
        if !start.is_empty() {
            let mut text = String::new();
            let mut count = 0usize;
            loop {
                match r.next_node()? {
                    Node::Child(child) => {
                        if !text.is_empty() {
                            children.push(AnyNode::Text(std::mem::take(&mut text)));
                        }
                        count += 1;
                        let e = AnyElement::read_element(r, &child)
                            .map_err(|e| e.at_dynamic(&child.name_str(), Some(count)))?;
                        children.push(AnyNode::Element(e));
                    }
                    Node::Text(t) => text.push_str(&t),
                    Node::End => break,
                }
            }
            if !text.is_empty() {
                children.push(AnyNode::Text(text));
            }
            // Whitespace between child elements is formatting, not content.
            if count > 0 {
                children.retain(|c| !matches!(c, AnyNode::Text(t) if is_space(t)));
            }
        }
        Ok(Self { name, attributes, children })
    }
}

fn is_space(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}
