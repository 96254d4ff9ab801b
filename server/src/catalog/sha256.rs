//! SHA-256 digests as the catalog keeps them: of a WAL file's content, and of a backup's
//! stored object.

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest, shown (and stored) as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

/// A finished hash: `hasher.finalize().into()`.
impl From<sha2::digest::Output<sha2::Sha256>> for Sha256 {
    fn from(digest: sha2::digest::Output<sha2::Sha256>) -> Self {
        Sha256(digest.into())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SHA-256: expected 64 hexadecimal digits")]
pub struct Sha256Error(String);

/// 64 hex digits, either case (catalogs have always been read that way).
impl FromStr for Sha256 {
    type Err = Sha256Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| Sha256Error(s.chars().take(80).collect()))?;
        Ok(Sha256(out))
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    use super::*;

    #[test]
    fn shows_and_parses_hex() {
        let empty: Sha256 = sha2::Sha256::new().finalize().into();
        let text = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(empty.to_string(), text);
        assert_eq!(text.parse::<Sha256>().unwrap(), empty);
        assert_eq!(text.to_uppercase().parse::<Sha256>().unwrap(), empty);
        assert_eq!(format!("{empty:?}"), format!("Sha256({text})"));
    }

    #[test]
    fn rejects_anything_else() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for bad in [
            String::new(),
            good[1..].to_owned(),
            format!("{good}0"),
            format!("{good}00"),
            format!("0x{}", &good[2..]),
            format!(" {}", &good[1..]),
            format!("{}g", &good[1..]),
            format!("{}\u{e9}", &good[2..]),
        ] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad:?} was accepted");
        }
    }
}
