//! Writing S3 XML responses and reading S3 XML request bodies.

use serde::de::DeserializeOwned;

use super::error::S3Error;

/// The declaration every S3 XML document starts with.
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// The S3 namespace of response documents.
pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// Largest XML request body accepted.
pub const MAX_XML_BODY_BYTES: usize = 1024 * 1024;

/// Whether XML 1.0 can carry `text` (as characters or character references).
pub fn can_carry(text: &str) -> bool {
    text.chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
}

/// Appends `text` with the five XML special characters escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would reach the reader as LF (XML end-of-line handling).
            '\r' => out.push_str("&#xD;"),
            // Characters XML 1.0 cannot carry at all (keys never hold them) are written as
            // references rather than breaking the document.
            c if !can_carry(c.encode_utf8(&mut [0; 4])) => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
}

/// A small builder for response documents.
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// Starts a document whose root element carries the S3 namespace.
    pub fn new(root: &str) -> Self {
        let mut out = String::with_capacity(512);
        out.push_str(DECLARATION);
        out.push_str(&format!("<{root} xmlns=\"{NAMESPACE}\">"));
        Self { out }
    }

    /// Opens an element.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes an element.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Writes `<name>text</name>`.
    pub fn element(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name)
    }

    /// Writes a principal element (`Owner`, `Initiator`): `<role><ID>id</ID><DisplayName>id</DisplayName></role>`.
    /// Cairn's principals are access keys, whose id is also their display name.
    pub fn principal(&mut self, role: &str, id: &str) -> &mut Self {
        self.open(role).element("ID", id).element("DisplayName", id).close(role)
    }

    /// Appends markup as is (for elements with attributes); the caller escapes.
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    /// Closes the root element and returns the document.
    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

/// Parses an XML request body.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::MalformedXml)?;
    quick_xml::de::from_str(text).map_err(|_| S3Error::MalformedXml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        let mut out = String::new();
        escape_into(&mut out, "a<b>&'\"\u{1}é\r\n");
        assert_eq!(out, "a&lt;b&gt;&amp;&apos;&quot;&#x1;é&#xD;\n");
        assert!(can_carry("tab\tnew\nline\u{10FFFF}") && !can_carry("\u{0}") && !can_carry("\u{FFFF}"));
    }

    #[test]
    fn writer_builds_namespaced_documents() {
        let mut w = XmlWriter::new("R");
        w.open("A").element("B", "x&y").close("A");
        assert_eq!(w.finish("R"), format!("{DECLARATION}<R xmlns=\"{NAMESPACE}\"><A><B>x&amp;y</B></A></R>"));
    }
}
