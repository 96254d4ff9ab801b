//! What a WAL file's content hashes to, named by the algorithm that hashed it.
//!
//! WAL files are hashed with BLAKE3: every pushed segment is hashed in full (16 MiB) to
//! tell an identical re-push (200) from different content under the same name (409), and
//! on this path BLAKE3 costs a third of SHA-256's time even with the CPU's SHA
//! instructions. Rows archived before carry SHA-256 and keep it: they are verified, and
//! compared with a re-push, in their own algorithm.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use super::Sha256;

/// The hash of a WAL file's uncompressed content. Shown, stored and parsed as
/// `blake3:<64 hex digits>` or `sha256:<64 hex digits>`; a bare 64-digit value (how rows
/// before BLAKE3 were stored) is SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentDigest {
    Blake3([u8; 32]),
    Sha256(Sha256),
}

/// A hash function a [`ContentDigest`] is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Blake3,
    Sha256,
}

impl Algorithm {
    /// What newly archived files are hashed with.
    pub const CURRENT: Algorithm = Algorithm::Blake3;

    pub fn hasher(self) -> ContentHasher {
        match self {
            Algorithm::Blake3 => ContentHasher::Blake3(Box::default()),
            Algorithm::Sha256 => ContentHasher::Sha256(Default::default()),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Algorithm::Blake3 => "blake3",
            Algorithm::Sha256 => "sha256",
        }
    }
}

impl ContentDigest {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            ContentDigest::Blake3(_) => Algorithm::Blake3,
            ContentDigest::Sha256(_) => Algorithm::Sha256,
        }
    }

    fn bytes(&self) -> &[u8; 32] {
        match self {
            ContentDigest::Blake3(b) => b,
            ContentDigest::Sha256(s) => &s.0,
        }
    }
}

/// A hash in progress; a `Write` so that it can sit where a file's bytes go.
pub enum ContentHasher {
    /// Boxed: its state is 1.9 KiB.
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        match self {
            ContentHasher::Blake3(h) => {
                h.update(bytes);
            }
            ContentHasher::Sha256(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> ContentDigest {
        use sha2::Digest;
        match self {
            ContentHasher::Blake3(h) => ContentDigest::Blake3(h.finalize().into()),
            ContentHasher::Sha256(h) => ContentDigest::Sha256(h.finalize().into()),
        }
    }
}

impl Write for ContentHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.algorithm().prefix())?;
        self.bytes().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentDigest({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a content digest: expected blake3: or sha256: and 64 hexadecimal digits")]
pub struct DigestError(String);

impl FromStr for ContentDigest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DigestError(s.chars().take(80).collect());
        let (algorithm, hex) = match s.split_once(':') {
            Some(("blake3", hex)) => (Algorithm::Blake3, hex),
            Some(("sha256", hex)) => (Algorithm::Sha256, hex),
            Some(_) => return Err(bad()),
            None => (Algorithm::Sha256, s),
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).map_err(|_| bad())?;
        Ok(match algorithm {
            Algorithm::Blake3 => ContentDigest::Blake3(out),
            Algorithm::Sha256 => ContentDigest::Sha256(Sha256(out)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, bytes: &[u8]) -> ContentDigest {
        let mut h = algorithm.hasher();
        h.write_all(bytes).unwrap();
        h.finish()
    }

    #[test]
    fn hashes_with_either_algorithm() {
        // Both algorithms' published digests of "abc".
        assert_eq!(
            digest(Algorithm::Blake3, b"abc").to_string(),
            "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(
            digest(Algorithm::Sha256, b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Pieces or whole, the same.
        let mut h = Algorithm::CURRENT.hasher();
        h.write_all(b"ab").unwrap();
        h.write_all(b"c").unwrap();
        assert_eq!(h.finish(), digest(Algorithm::Blake3, b"abc"));
    }

    #[test]
    fn parses_what_it_shows_and_rows_from_before() {
        for d in [
            digest(Algorithm::Blake3, b""),
            digest(Algorithm::Sha256, b""),
        ] {
            assert_eq!(d.to_string().parse::<ContentDigest>().unwrap(), d);
            let (algorithm, hex) = d
                .to_string()
                .split_once(':')
                .map(|(a, h)| (a.to_owned(), h.to_uppercase()))
                .unwrap();
            assert_eq!(
                format!("{algorithm}:{hex}")
                    .parse::<ContentDigest>()
                    .unwrap(),
                d
            );
        }
        let bare = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            bare.parse::<ContentDigest>().unwrap(),
            digest(Algorithm::Sha256, b"")
        );
    }

    #[test]
    fn rejects_anything_else() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for bad in [
            String::new(),
            "blake3:".to_owned(),
            format!("md5:{good}"),
            format!("blake3:{}", &good[1..]),
            format!("blake3:{good}0"),
            format!("BLAKE3:{good}"),
            format!("blake3: {}", &good[1..]),
            format!("sha256:sha256:{good}"),
            good[1..].to_owned(),
        ] {
            assert!(
                bad.parse::<ContentDigest>().is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
