//! Content kept from `xs:any`: an element of any name with any attributes and children.

use serde::{Deserialize, Serialize};
pub use smol_str::SmolStr;

use super::{Reader, Run, Start, Writer, XmlElement, is_xml_name};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};

/// An element kept verbatim from `xs:any` content (e.g. a WMI class in a hardware inventory
/// `Instance`, whose children are its properties).
///
/// Attribute order and child order are preserved. Text is kept in [`AnyElement::text`]; the
/// protocol's documents carry no mixed content, so when an element has both text and child
/// elements the text pieces are joined and written before the children, and whitespace-only
/// text between child elements (formatting) is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyElement {
    /// Element name (inline up to 23 bytes, no allocation).
    pub name: SmolStr,
    /// Attributes in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AnyAttribute>,
    /// Unescaped text content (inline up to 23 bytes, no allocation).
    #[serde(default, skip_serializing_if = "SmolStr::is_empty")]
    pub text: SmolStr,
    /// Child elements in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<AnyElement>,
}

/// An attribute of an [`AnyElement`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyAttribute {
    /// Attribute name.
    pub name: SmolStr,
    /// Unescaped value.
    pub value: String,
}

impl AnyElement {
    /// Creates an element with no attributes, text or children.
    pub fn new(name: impl Into<SmolStr>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Adds a child element `<name>text</name>` (the shape of a WMI property), builder style.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<SmolStr>, text: impl Into<SmolStr>) -> Self {
        self.children.push(AnyElement { name: name.into(), text: text.into(), ..Self::default() });
        self
    }

    /// Adds an attribute, builder style.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<SmolStr>, value: impl Into<String>) -> Self {
        self.attributes.push(AnyAttribute { name: name.into(), value: value.into() });
        self
    }

    /// The child elements named `name`.
    pub fn elements<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s AnyElement> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child element named `name` (a WMI property's value).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.children.iter().find(|c| c.name == name).map(|c| c.text.as_str())
    }
}

/// Checks that `name` is an XML name, so that writing cannot produce a malformed document.
fn check_name(name: &str) -> Result<(), EncodeError> {
    if is_xml_name(name) { Ok(()) } else { Err(EncodeError::InvalidName(name.to_owned())) }
}

/// Child names already checked ([`check_name`]), for the last few parent names: for each,
/// the names of its children by position, filled in order. Checking a name byte by byte
/// costs about a hundred instructions, comparing with a known one about a third of that, and
/// a 2 MB hardware inventory writes some 28,000 property names from a dozen classes.
#[derive(Debug, Default)]
pub(crate) struct KnownNames {
    parents: Vec<(SmolStr, Vec<SmolStr>)>,
    /// The slot [`KnownNames::insert`] replaces next when all are taken.
    next: usize,
}

/// Parent names [`KnownNames`] keeps, and child positions per parent.
const KNOWN_PARENTS: usize = 16;
const KNOWN_CHILDREN: usize = 64;

impl KnownNames {
    /// The slot of parent `name`, if it has one (then `name` is an XML name).
    fn find(&self, name: &SmolStr) -> Option<usize> {
        self.parents.iter().position(|(p, _)| p == name)
    }

    /// A slot for parent `name`, which must be an XML name and have no slot: a new one, or
    /// the oldest, emptied, when all are taken.
    fn insert(&mut self, name: &SmolStr) -> usize {
        if self.parents.len() < KNOWN_PARENTS {
            self.parents.push((name.clone(), Vec::new()));
            return self.parents.len() - 1;
        }
        let i = self.next;
        self.next = (self.next + 1) % KNOWN_PARENTS;
        let (p, children) = &mut self.parents[i];
        p.clone_from(name);
        children.clear();
        i
    }

    /// Whether `name`, child `k` of the parent in `slot`, was checked before.
    fn is_known(&self, slot: usize, k: usize, name: &SmolStr) -> bool {
        self.parents[slot].1.get(k) == Some(name)
    }

    /// Remembers that `name`, child `k` of the parent in `slot`, is an XML name.
    fn remember(&mut self, slot: usize, k: usize, name: &SmolStr) {
        let known = &mut self.parents[slot].1;
        if let Some(known) = known.get_mut(k) {
            known.clone_from(name);
        } else if k == known.len() && k < KNOWN_CHILDREN {
            known.push(name.clone());
        }
    }
}

impl AnyElement {
    /// Opens the element and writes its attributes. Returns the element's slot in the
    /// writer's [`KnownNames`], or `None` (with the error recorded) when a name is not an XML
    /// name, and then the element is not to be written further.
    fn write_start(&self, w: &mut Writer) -> Option<usize> {
        let slot = match w.known_names.find(&self.name) {
            Some(slot) => slot,
            None => {
                if let Err(e) = check_name(&self.name) {
                    w.fail(e);
                    return None;
                }
                w.known_names.insert(&self.name)
            }
        };
        w.start(&self.name);
        for a in &self.attributes {
            if let Err(e) = check_name(&a.name) {
                w.fail(e);
                return None;
            }
            w.attr(&a.name, &a.value);
        }
        Some(slot)
    }
}

impl XmlElement for AnyElement {
    /// Writes the element under its own name; `name` is ignored (the element carries it).
    fn write_element(&self, _name: &str, w: &mut Writer) {
        let Some(parent) = self.write_start(w) else { return };
        w.text(&self.text);
        for (k, c) in self.children.iter().enumerate() {
            if c.attributes.is_empty() && c.children.is_empty() {
                // A WMI property: `<Name>text</Name>`, the bytes of the general path below.
                if w.known_names.is_known(parent, k, &c.name) {
                    w.leaf(&c.name, &c.text);
                    continue;
                }
                match check_name(&c.name) {
                    Ok(()) => {
                        w.known_names.remember(parent, k, &c.name);
                        w.leaf(&c.name, &c.text);
                    }
                    // As `write_element` does: record it and write nothing of this child.
                    Err(e) => w.fail(e),
                }
            } else {
                c.write_element(&c.name, w);
            }
        }
        w.end(&self.name);
    }

    fn read_element(r: &mut Reader<'_>, start: &Start<'_>) -> Result<Self, DecodeError> {
        let name = SmolStr::new(r.name_of(start));
        let not_a_name = |r: &Reader<'_>, n: &str| r.error(DecodeErrorKind::InvalidName(n.into()));
        if !is_xml_name(&name) {
            return Err(not_a_name(r, &name));
        }
        let mut attributes = Vec::new();
        if start.has_attrs() {
            let mut attrs = start.attrs();
            while let Some((n, v)) = attrs.next_attr(r)? {
                let name = match std::str::from_utf8(n) {
                    Ok(n) if is_xml_name(n) => SmolStr::new(n),
                    _ => return Err(not_a_name(r, &String::from_utf8_lossy(n))),
                };
                attributes.push(AnyAttribute { name, value: v.into_owned() });
            }
        }
        let mut text = SmolStr::default();
        let mut children = Vec::new();
        if start.is_read() {
            text = SmolStr::new(r.text(start)?);
        } else if !start.is_empty() {
            // The text joined so far, and the run since the last child element (kept until we
            // know whether it is formatting between elements).
            let mut joined = String::new();
            let mut run = Run::Empty;
            loop {
                if matches!(run, Run::Empty)
                    && let Some((name, text)) = r.simple_child(true)
                {
                    if !is_xml_name(name) {
                        return Err(not_a_name(r, name));
                    }
                    let text = SmolStr::new(r.run_str(&text));
                    push_child(
                        &mut children,
                        AnyElement { name: SmolStr::new(name), text, ..Self::default() },
                    );
                    continue;
                }
                let Some(child) = r.next_node(&mut run)? else { break };
                let pending = r.run_str(&run);
                if !is_space(pending) {
                    joined.push_str(pending);
                }
                run = Run::Empty;
                let position = children.len() + 1;
                let e = AnyElement::read_element(r, &child)
                    .map_err(|e| e.at_dynamic(&child.name_str(), Some(position)))?;
                push_child(&mut children, e);
            }
            let last = r.run_str(&run);
            if children.is_empty() {
                text = SmolStr::new(last);
            } else {
                if !is_space(last) {
                    joined.push_str(last);
                }
                text = SmolStr::from(joined);
            }
        }
        Ok(Self { name, attributes, text, children })
    }
}

impl crate::value::XmlValue for SmolStr {
    fn parse_xml(text: &str) -> Result<Self, crate::value::ValueError> {
        Ok(SmolStr::new(text))
    }

    fn write_xml(&self, out: &mut String) {
        out.push_str(self);
    }

    fn as_xml_str(&self) -> Option<&str> {
        Some(self)
    }
}

fn push_child(children: &mut Vec<AnyElement>, child: AnyElement) {
    if children.is_empty() {
        // A WMI class element holds a handful of properties.
        children.reserve_exact(8);
    }
    children.push(child);
}

fn is_space(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy, prop_assert_eq, proptest};
    use proptest::strategy::Just;

    use super::{AnyAttribute, AnyElement, SmolStr, Writer, XmlElement};

    /// The path of `write_element` for every element, child or not, as it was before the leaf
    /// path: the reference the leaf path must match byte for byte, errors included.
    fn write_general(e: &AnyElement, w: &mut Writer) {
        if let Err(err) = super::check_name(&e.name) {
            w.fail(err);
            return;
        }
        w.start(&e.name);
        for a in &e.attributes {
            if let Err(err) = super::check_name(&a.name) {
                w.fail(err);
                return;
            }
            w.attr(&a.name, &a.value);
        }
        w.text(&e.text);
        for c in &e.children {
            write_general(c, w);
        }
        w.end(&e.name);
    }

    fn name() -> impl Strategy<Value = SmolStr> {
        "(Name|A|_x|a-b.c:d|é|1bad|a b|)".prop_map(SmolStr::from)
    }

    fn text() -> impl Strategy<Value = SmolStr> {
        "[a-z&<>\"\r\n\t é\u{0}\u{FFFE}]{0,12}".prop_map(SmolStr::from)
    }

    fn attributes() -> impl Strategy<Value = Vec<AnyAttribute>> {
        proptest::collection::vec(
            (name(), "[a-z&\"<]{0,6}").prop_map(|(name, value)| AnyAttribute { name, value }),
            0..2,
        )
    }

    fn element() -> impl Strategy<Value = AnyElement> {
        let leaf = (name(), attributes(), text()).prop_map(|(name, attributes, text)| AnyElement {
            name,
            attributes,
            text,
            children: Vec::new(),
        });
        leaf.prop_recursive(3, 24, 6, |inner| {
            (
                name(),
                proptest::prop_oneof![Just(Vec::new()), attributes()],
                text(),
                proptest::collection::vec(inner, 0..6),
            )
                .prop_map(|(name, attributes, text, children)| AnyElement {
                    name,
                    attributes,
                    text,
                    children,
                })
        })
    }

    /// The writer skips the check of a child name only when it equals a name checked before
    /// at the same position under a parent of the same name: a bad name in the place of a
    /// good one is still refused, also after more parent names than the writer keeps.
    #[test]
    fn known_names_skip_only_equal_names() {
        use crate::error::EncodeError;
        let class = |name: &str, property: &str| {
            AnyElement::new(name).with_property("Name", "a").with_property(property, "b")
        };
        let write = |elements: &[AnyElement]| {
            let mut w = Writer::new();
            w.start("Root");
            for e in elements {
                e.write_element("ignored", &mut w);
            }
            w.end("Root");
            w.finish()
        };
        let bad = |r: Result<String, EncodeError>, name: &str| matches!(r, Err(EncodeError::InvalidName(n)) if n == name);
        assert!(bad(write(&[class("C", "Good"), class("C", "Bad Name")]), "Bad Name"));
        assert!(bad(
            write(&[class("C", "Good"), class("C", "Good "), class("C", "Good")]),
            "Good "
        ));
        // A parent name that is not an XML name, after a good one of the same length.
        assert!(bad(write(&[class("Ca", "Good"), class("C ", "Good")]), "C "));
        let many: Vec<AnyElement> = (0..3 * super::KNOWN_PARENTS)
            .map(|i| class(&format!("Class{i}"), "Good"))
            .chain([class("Class0", "1bad")])
            .collect();
        assert!(bad(write(&many), "1bad"));
        let good: Vec<AnyElement> = (0..3 * super::KNOWN_PARENTS)
            .map(|i| class(&format!("Class{}", i % 20), "Good"))
            .collect();
        let text = write(&good).expect("every name is good");
        assert_eq!(text.matches("<Good>b</Good>").count(), good.len());
    }

    proptest! {
        /// `write_element` (with `Writer::leaf` for children that hold only text) writes the
        /// bytes and reports the error of the general path, for any tree, valid or not.
        #[test]
        fn the_leaf_path_writes_what_the_general_path_writes(e in element()) {
            let mut fast = Writer::new();
            fast.start("Root");
            e.write_element("ignored", &mut fast);
            fast.end("Root");
            let mut general = Writer::new();
            general.start("Root");
            write_general(&e, &mut general);
            general.end("Root");
            prop_assert_eq!(fast.finish_keep(), general.finish_keep());
        }
    }
}
