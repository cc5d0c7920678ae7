//! The console's HTML builder. Markup comes only from `&'static str` (tags, attribute names,
//! fixed text); everything from data goes through [`Html::text`] or an attribute value, both
//! escaped. There is no way to add data as markup, so nothing rendered from data is HTML.
//!
//! Text is also made legible: Unicode direction overrides and invisible format characters
//! (the "bidi-override" trick that reverses how an address or a label reads) are shown as
//! their code points, e.g. `⟦U+202E⟧`, instead of being applied.

use std::fmt::Write;

/// An HTML document being built.
#[derive(Debug, Default)]
pub struct Html {
    out: String,
}

/// Characters that change how the text around them is displayed without being seen.
fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // embeddings and overrides
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' // isolates
        | '\u{FEFF}'
        | '\u{061C}')
        || (c.is_control() && c != '\n' && c != '\t')
}

/// `s` escaped for HTML text and attribute values (quoted with `"`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_invisible_control(c) => {
                let _ = write!(out, "\u{27E6}U+{:04X}\u{27E7}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query parameter value or a path segment.
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Html {
    pub fn new() -> Html {
        Html::default()
    }

    fn attrs(&mut self, attrs: &[(&'static str, &str)]) {
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
    }

    /// `<tag attrs>`.
    pub fn open(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) -> &mut Html {
        self.out.push('<');
        self.out.push_str(tag);
        self.attrs(attrs);
        self.out.push('>');
        self
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &'static str) -> &mut Html {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// An element without content (`input`, `meta`, `link`).
    pub fn void(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) -> &mut Html {
        self.open(tag, attrs)
    }

    /// Escaped text.
    pub fn text(&mut self, s: &str) -> &mut Html {
        self.out.push_str(&escape(s));
        self
    }

    /// `<tag attrs>text</tag>`.
    pub fn el(
        &mut self,
        tag: &'static str,
        attrs: &[(&'static str, &str)],
        text: &str,
    ) -> &mut Html {
        self.open(tag, attrs).text(text).close(tag)
    }

    /// A link to `href` (built by the console from fixed paths and escaped components).
    pub fn link(&mut self, href: &str, text: &str) -> &mut Html {
        self.el("a", &[("href", href)], text)
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_never_becomes_markup() {
        let mut h = Html::new();
        h.el(
            "td",
            &[("title", "\"><script>alert(1)</script>")],
            "<img src=x onerror=alert(1)>&",
        );
        let s = h.into_string();
        assert_eq!(
            s,
            "<td title=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">&lt;img src=x onerror=alert(1)&gt;&amp;</td>"
        );
    }

    #[test]
    fn direction_overrides_are_shown_not_applied() {
        assert_eq!(escape("abc\u{202E}fed"), "abc\u{27E6}U+202E\u{27E7}fed");
        assert_eq!(escape("a\u{200B}b"), "a\u{27E6}U+200B\u{27E7}b");
        assert_eq!(url_component("0xAb /?&="), "0xAb%20%2F%3F%26%3D");
    }
}
