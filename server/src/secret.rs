//! Values that must never reach a log line or an API answer.

use std::fmt;

/// A value that must not be printed: `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shows a URL without its password or query string.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A URL as logs may show it: the password masked, no query string or fragment (where
/// tokens such as SAS signatures travel).
pub fn redact_url(url: &str) -> String {
    let s = url.split(['?', '#']).next().unwrap_or_default();
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &s[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &s[..scheme + 3], &s[at..])
        }
        _ => s.to_owned(),
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_no_password_or_query() {
        let s = Secret::new("postgres://walgate:hunter2@db:5432/catalog?password=x");
        assert_eq!(format!("{s}"), "postgres://walgate:***@db:5432/catalog");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(
            Secret::new("sqlite:///x/c.db").to_string(),
            "sqlite:///x/c.db"
        );
    }
}
