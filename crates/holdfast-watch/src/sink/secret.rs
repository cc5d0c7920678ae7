//! [`Secret`]: a value that never shows in `Debug` or `Display`.

use std::fmt;

/// A secret (an HMAC key, an SMTP password). `Debug` prints `<redacted>`; the value is only
/// reachable through [`Secret::expose`], at the one place that uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
