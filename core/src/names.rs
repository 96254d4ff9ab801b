//! Names an operator gives: clusters (the first path segment of every per-cluster API
//! path and object key) and storage targets (recorded by each cluster, so they stay
//! stable while the URL or credentials behind them change). Both are
//! `[a-z0-9][a-z0-9_-]{0,62}`: safe in URLs, object keys and file names as they are.

use std::fmt;
use std::str::FromStr;

/// Whether `s` is `[a-z0-9][a-z0-9_-]{0,62}`.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// A cluster name, `[a-z0-9][a-z0-9_-]{0,62}`; safe in URLs and object keys as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a cluster name: use 1 to 63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit"
)]
pub struct ClusterNameError(String);

impl FromStr for ClusterName {
    type Err = ClusterNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_name(s) {
            Ok(ClusterName(s.to_owned()))
        } else {
            Err(ClusterNameError(s.chars().take(80).collect()))
        }
    }
}

impl ClusterName {
    /// What [`ClusterName::from_str`] accepts, as a regular expression (for OpenAPI).
    pub const PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A storage target's name, as the config file's `[targets.NAME]` and each cluster's
/// catalog row give it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetName(String);

impl TargetName {
    /// The target that `storage_url` defines.
    pub fn default_name() -> Self {
        TargetName("default".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TargetName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if is_name(s) {
            Ok(TargetName(s.to_owned()))
        } else {
            Err(format!(
                "bad storage target name `{}`: use 1 to 63 of a-z, 0-9, - and _, starting with a letter or digit",
                s.chars().take(80).collect::<String>()
            ))
        }
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TargetName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_pattern() {
        for good in ["a", "0", "main-db", "db_01", &"a".repeat(63)] {
            assert_eq!(good.parse::<ClusterName>().unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a.b",
            "a/b",
            "..",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<ClusterName>().is_err(), "{bad:?} was accepted");
            assert!(bad.parse::<TargetName>().is_err(), "{bad:?} was accepted");
        }
        assert!("archive-eu_1".parse::<TargetName>().is_ok());
    }
}
