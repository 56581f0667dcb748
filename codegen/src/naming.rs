//! XSD names to Rust identifiers (prost `ident.rs` style).

/// Splits an XML name into words: at `_`, `-`, `.`, at lower-to-upper changes, and where an
/// acronym ends (`NetBIOSName` → `Net`, `BIOS`, `Name`). Digits stay with what precedes them.
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if matches!(c, '_' | '-' | '.' | ' ' | ':') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `UpperCamelCase` type name: `CCM_ComputerSystem` → `CcmComputerSystem`,
/// `WSUSLocationRequest` → `WsusLocationRequest`.
pub fn type_name(name: &str) -> String {
    let mut out = String::new();
    for w in words(name) {
        let mut cs = w.chars();
        if let Some(first) = cs.next() {
            out.extend(first.to_uppercase());
            out.push_str(&cs.as_str().to_lowercase());
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() { "Unnamed".to_owned() } else { out }
}

/// `snake_case` field name: `NetBIOSName` → `net_bios_name`, `ClientID` → `client_id`.
pub fn field_name(name: &str) -> String {
    let mut out = words(name).iter().map(|w| w.to_lowercase()).collect::<Vec<_>>().join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if matches!(out.as_str(), "self" | "super" | "crate" | "Self") {
        out.push('_');
    }
    if out.is_empty() { "unnamed".to_owned() } else { out }
}

/// Whether `s` is a Rust keyword that needs `r#`.
pub fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "break"
            | "const"
            | "continue"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "static"
            | "struct"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "async"
            | "await"
            | "dyn"
            | "abstract"
            | "become"
            | "box"
            | "do"
            | "final"
            | "macro"
            | "override"
            | "priv"
            | "typeof"
            | "unsized"
            | "virtual"
            | "yield"
            | "try"
            | "gen"
    )
}

/// Module name of a schema file: `report-common.xsd` → `report_common`.
pub fn module_name(file: &str) -> String {
    let stem = file.strip_suffix(".xsd").unwrap_or(file);
    field_name(stem)
}

#[cfg(test)]
mod tests {
    use super::{field_name, module_name, type_name};

    #[test]
    fn splits_acronyms_and_underscores() {
        assert_eq!(type_name("CCM_ComputerSystem"), "CcmComputerSystem");
        assert_eq!(type_name("WSUSLocationRequest"), "WsusLocationRequest");
        assert_eq!(type_name("MPKEYINFORMATION"), "Mpkeyinformation");
        assert_eq!(type_name("MPList"), "MpList");
        assert_eq!(field_name("NetBIOSName"), "net_bios_name");
        assert_eq!(field_name("ClientID"), "client_id");
        assert_eq!(field_name("IPAddresses"), "ip_addresses");
        assert_eq!(field_name("x64UnknownMachineGUID"), "x64_unknown_machine_guid");
        assert_eq!(field_name("SMSID"), "smsid");
        assert_eq!(field_name("Type"), "type");
        assert_eq!(field_name("self"), "self_");
        assert_eq!(module_name("report-common.xsd"), "report_common");
    }
}
