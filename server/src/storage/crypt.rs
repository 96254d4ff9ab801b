//! Encryption at rest: envelope encryption with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`), streamed with the STREAM construction (`aead::stream`, 64 KiB
//! segments) so memory stays bounded and a flipped, dropped or reordered byte anywhere
//! fails authentication, truncation included.
//!
//! Each object gets a random data key, wrapped by the keyring's newest master key. The
//! header names that master key's id, so rotating (adding a newer key) never rewrites
//! stored objects: old ones still open with the key they name. The header also carries
//! the object key it was written for, authenticated with the wrapped data key, so an
//! object copied over another is refused.
//!
//! ```text
//! "WGENC\0" version(1) id_len(1) id  key_len(2, BE) object key
//! wrap nonce(24)  stream nonce(19)  wrapped data key(32 + 16)
//! STREAM segments: 64 KiB + 16 each, the last shorter and flagged last
//! ```
//!
//! `walgate decrypt --keyring FILE` opens an object offline, without a gateway.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};

const MAGIC: &[u8; MAGIC_LEN] = b"WGENC\0";
/// How many leading bytes tell an encrypted object.
pub const MAGIC_LEN: usize = 6;
const VERSION: u8 = 1;
/// Plaintext bytes per STREAM segment.
pub const SEGMENT: usize = 64 << 10;
const TAG: usize = 16;
const WRAP_NONCE: usize = 24;
const STREAM_NONCE: usize = 19;
const WRAPPED_KEY: usize = 32 + TAG;

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error(
        "object `{object}` is encrypted with master key `{id}`, which is not in the keyring: add it back"
    )]
    UnknownKey { object: String, id: String },
    #[error(
        "object `{object}` is encrypted but this storage target has no keyring: set encryption_keyring"
    )]
    NoKeyring { object: String },
    #[error(
        "object `{object}` failed authentication ({what}): it was altered, damaged or cut short in storage; it is not served"
    )]
    Tampered { object: String, what: &'static str },
}

/// Does `data` start like an encrypted object.
pub fn is_sealed(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// Master keys by id; the last one listed seals new objects.
///
/// The file has one key per line, `ID:BASE64` (32 random bytes), `#` comments allowed;
/// `walgate keyring add FILE` appends a fresh one. Keep every key an object may name.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<(String, chacha20poly1305::Key)>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

impl Keyring {
    pub fn load(path: &Path) -> Result<Self, CryptError> {
        let bad = |reason: String| CryptError::Keyring {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Self::parse(&text).map_err(bad)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, chacha20poly1305::Key)> = vec![];
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: &str| format!("line {}: {what}", n + 1);
            let (id, key) = line
                .split_once(':')
                .ok_or_else(|| at("expected ID:BASE64KEY"))?;
            let id_ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !id_ok {
                return Err(at("the id must be 1 to 64 of A-Z a-z 0-9 - _ ."));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(at(&format!("key id `{id}` appears twice")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|_| at("the key is not base64"))?;
            if bytes.len() != 32 {
                return Err(at("the key must be 32 bytes"));
            }
            keys.push((id.to_owned(), array::<32>(&bytes).into()));
        }
        if keys.is_empty() {
            return Err("no keys: create one with `walgate keyring add FILE`".into());
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// A new key line for id `id`: 32 bytes from the OS's generator.
    pub fn new_line(id: &str) -> String {
        let key = random::<32>();
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        format!("{id}:{encoded}")
    }

    /// The id of the key that seals new objects.
    pub fn active_id(&self) -> &str {
        &self.keys.last().expect("a keyring has keys").0
    }

    fn key(&self, object: &str, id: &str) -> Result<&chacha20poly1305::Key, CryptError> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, key)| key)
            .ok_or_else(|| CryptError::UnknownKey {
                object: object.to_owned(),
                id: id.to_owned(),
            })
    }

    /// Starts sealing object `object`: its header, and the sealer for its content.
    pub fn seal(&self, object: &str) -> (Bytes, Sealer) {
        let (id, master) = self.keys.last().expect("a keyring has keys");
        let data_key = random::<32>();
        let wrap_nonce = random::<WRAP_NONCE>();
        let stream_nonce = random::<STREAM_NONCE>();
        let mut header = BytesMut::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&[VERSION, id.len() as u8]);
        header.extend_from_slice(id.as_bytes());
        header.extend_from_slice(&(object.len() as u16).to_be_bytes());
        header.extend_from_slice(object.as_bytes());
        header.extend_from_slice(&wrap_nonce);
        header.extend_from_slice(&stream_nonce);
        let wrapped = XChaCha20Poly1305::new(master)
            .encrypt(
                &wrap_nonce.into(),
                Payload {
                    msg: &data_key,
                    aad: &header,
                },
            )
            .expect("wrapping 32 bytes cannot fail");
        header.extend_from_slice(&wrapped);
        let cipher = XChaCha20Poly1305::new(&data_key.into());
        let sealer = Sealer {
            stream: Some(EncryptorBE32::from_aead(cipher, &stream_nonce.into())),
            pending: BytesMut::new(),
        };
        (header.freeze(), sealer)
    }

    /// Seals a whole small object.
    pub fn seal_all(&self, object: &str, plain: &[u8]) -> Bytes {
        let (header, mut sealer) = self.seal(object);
        let mut out = BytesMut::from(&header[..]);
        for part in sealer.push(plain) {
            out.extend_from_slice(&part);
        }
        out.extend_from_slice(&sealer.finish());
        out.freeze()
    }

    /// Opens an object fed in pieces; `expect` is the object key it must have been
    /// written for (`None` offline, where the header says).
    pub fn unsealer(&self, expect: Option<&str>) -> Unsealer {
        Unsealer {
            keyring: self.clone(),
            expect: expect.map(str::to_owned),
            header: BytesMut::new(),
            opener: None,
        }
    }

    /// Parses and checks the header once `data` holds all of it; `Ok(None)`: more bytes
    /// are needed.
    fn open(
        &self,
        expect: Option<&str>,
        data: &[u8],
    ) -> Result<Option<(usize, Opener)>, CryptError> {
        let shown = expect.unwrap_or("(offline)");
        let tampered = |what| CryptError::Tampered {
            object: shown.to_owned(),
            what,
        };
        let mut at = MAGIC.len();
        let need = |at: usize, n: usize| data.len() >= at + n;
        if !need(at, 2) {
            return Ok(None);
        }
        if data[at] != VERSION {
            return Err(tampered("unknown format version"));
        }
        let id_len = data[at + 1] as usize;
        at += 2;
        if !need(at, id_len + 2) {
            return Ok(None);
        }
        let id = std::str::from_utf8(&data[at..at + id_len]).map_err(|_| tampered("header"))?;
        at += id_len;
        let key_len = u16::from_be_bytes([data[at], data[at + 1]]) as usize;
        at += 2;
        if !need(at, key_len + WRAP_NONCE + STREAM_NONCE + WRAPPED_KEY) {
            return Ok(None);
        }
        let object =
            std::str::from_utf8(&data[at..at + key_len]).map_err(|_| tampered("header"))?;
        at += key_len;
        let wrap_nonce = &data[at..at + WRAP_NONCE];
        at += WRAP_NONCE;
        let stream_nonce = &data[at..at + STREAM_NONCE];
        at += STREAM_NONCE;
        let authenticated = &data[..at];
        let wrapped = &data[at..at + WRAPPED_KEY];
        at += WRAPPED_KEY;
        let master = self.key(object, id)?;
        let data_key = XChaCha20Poly1305::new(master)
            .decrypt(
                &array::<WRAP_NONCE>(wrap_nonce).into(),
                Payload {
                    msg: wrapped,
                    aad: authenticated,
                },
            )
            .map_err(|_| tampered("header"))?;
        if expect.is_some_and(|e| e != object) {
            return Err(tampered("it was written for another object"));
        }
        let cipher = XChaCha20Poly1305::new(&array::<32>(&data_key).into());
        let opener = Opener {
            object: object.to_owned(),
            stream: Some(DecryptorBE32::from_aead(
                cipher,
                &array::<STREAM_NONCE>(stream_nonce).into(),
            )),
            pending: BytesMut::new(),
        };
        Ok(Some((at, opener)))
    }

    /// Opens a whole object (`expect`: the key it must have been written for); returns
    /// the key its header names, and the plaintext.
    pub fn open_all(
        &self,
        expect: Option<&str>,
        sealed: &[u8],
    ) -> Result<(String, Vec<u8>), CryptError> {
        let mut unsealer = self.unsealer(expect);
        let mut out = Vec::with_capacity(sealed.len());
        for part in unsealer.push(sealed)? {
            out.extend_from_slice(&part);
        }
        let (object, last) = unsealer.finish()?;
        out.extend_from_slice(&last);
        Ok((object, out))
    }
}

/// Opens one object fed in pieces of any size: the header, then its segments.
pub struct Unsealer {
    keyring: Keyring,
    expect: Option<String>,
    header: BytesMut,
    opener: Option<Opener>,
}

impl Unsealer {
    /// Takes more stored bytes; returns the plaintext now authenticated.
    pub fn push(&mut self, sealed: &[u8]) -> Result<Vec<Bytes>, CryptError> {
        if let Some(opener) = self.opener.as_mut() {
            return opener.push(sealed);
        }
        self.header.extend_from_slice(sealed);
        match self.keyring.open(self.expect.as_deref(), &self.header)? {
            None => Ok(vec![]),
            Some((at, mut opener)) => {
                let out = opener.push(&self.header[at..])?;
                self.header = BytesMut::new();
                self.opener = Some(opener);
                Ok(out)
            }
        }
    }

    /// The end of the stored bytes: the last plaintext, and the object key the header
    /// names.
    pub fn finish(self) -> Result<(String, Bytes), CryptError> {
        let Some(mut opener) = self.opener else {
            return Err(CryptError::Tampered {
                object: self.expect.unwrap_or_else(|| "(offline)".into()),
                what: "cut short in its header",
            });
        };
        let last = opener.finish()?;
        Ok((opener.object, last))
    }
}

/// A slice already checked to be `N` bytes long, as an array.
fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    s.try_into().expect("length checked by the caller")
}

fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random generator works");
    buf
}

/// Encrypts a stream of plaintext, one 64 KiB segment at a time.
pub struct Sealer {
    stream: Option<EncryptorBE32<XChaCha20Poly1305>>,
    pending: BytesMut,
}

impl Sealer {
    /// Takes more plaintext; returns the sealed segments now complete.
    pub fn push(&mut self, plain: &[u8]) -> Vec<Bytes> {
        self.pending.extend_from_slice(plain);
        let mut out = vec![];
        // Keep at least one byte back: the last segment must be sealed as the last.
        while self.pending.len() > SEGMENT {
            let segment = self.pending.split_to(SEGMENT);
            let stream = self.stream.as_mut().expect("not finished");
            let sealed = stream
                .encrypt_next(&segment[..])
                .expect("in-memory sealing");
            out.push(Bytes::from(sealed));
        }
        out
    }

    /// Seals what is left as the last segment.
    pub fn finish(&mut self) -> Bytes {
        let stream = self.stream.take().expect("finished once");
        let rest = self.pending.split();
        Bytes::from(stream.encrypt_last(&rest[..]).expect("in-memory sealing"))
    }
}

/// Decrypts a stream of sealed segments, checking each.
pub struct Opener {
    /// The object key the header names.
    pub object: String,
    stream: Option<DecryptorBE32<XChaCha20Poly1305>>,
    pending: BytesMut,
}

impl Opener {
    fn tampered(&self) -> CryptError {
        CryptError::Tampered {
            object: self.object.clone(),
            what: "content",
        }
    }

    /// Takes more sealed bytes; returns the plaintext of the segments now complete.
    pub fn push(&mut self, sealed: &[u8]) -> Result<Vec<Bytes>, CryptError> {
        self.pending.extend_from_slice(sealed);
        let mut out = vec![];
        while self.pending.len() > SEGMENT + TAG {
            let segment = self.pending.split_to(SEGMENT + TAG);
            let Some(stream) = self.stream.as_mut() else {
                return Err(self.tampered());
            };
            match stream.decrypt_next(&segment[..]) {
                Ok(plain) => out.push(Bytes::from(plain)),
                Err(_) => return Err(self.tampered()),
            }
        }
        Ok(out)
    }

    /// The end of the stored bytes: opens the last segment, which must be flagged last
    /// (an object cut at a segment boundary fails here).
    pub fn finish(&mut self) -> Result<Bytes, CryptError> {
        let stream = self.stream.take().ok_or_else(|| self.tampered())?;
        let rest = self.pending.split();
        stream
            .decrypt_last(&rest[..])
            .map(Bytes::from)
            .map_err(|_| self.tampered())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn round_trips_any_size_and_chunking() {
        let keys = ring(&[&Keyring::new_line("k1")]);
        for size in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 7] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = keys.seal_all("clusters/a/wal/x", &plain);
            assert!(is_sealed(&sealed));
            let (object, back) = keys.open_all(Some("clusters/a/wal/x"), &sealed).unwrap();
            assert_eq!((object.as_str(), back.len()), ("clusters/a/wal/x", size));
            assert!(back == plain);
            // Fed a few bytes at a time, the same.
            let mut unsealer = keys.unsealer(Some("clusters/a/wal/x"));
            let mut out = vec![];
            for piece in sealed.chunks(1000) {
                for p in unsealer.push(piece).unwrap() {
                    out.extend_from_slice(&p);
                }
            }
            out.extend_from_slice(&unsealer.finish().unwrap().1);
            assert!(out == plain);
        }
    }

    #[test]
    fn any_flipped_byte_cut_or_swap_is_refused() {
        let keys = ring(&[&Keyring::new_line("k1")]);
        let plain = vec![42u8; 2 * SEGMENT + 100];
        let sealed = keys.seal_all("a", &plain);
        for at in [0, 7, 10, 60, 100, SEGMENT, sealed.len() - 1] {
            let mut bad = sealed.to_vec();
            bad[at] ^= 1;
            assert!(keys.open_all(Some("a"), &bad).is_err(), "flip at {at}");
        }
        // Cut at a segment boundary (only whole segments left) or anywhere else.
        let header = sealed.len() - (2 * (SEGMENT + TAG) + 100 + TAG);
        for len in [header + SEGMENT + TAG, sealed.len() - 1, header] {
            assert!(
                keys.open_all(Some("a"), &sealed[..len]).is_err(),
                "cut at {len}"
            );
        }
        let err = keys.open_all(Some("b"), &sealed).unwrap_err().to_string();
        assert!(err.contains("another object"), "{err}");
    }

    #[test]
    fn rotation_keeps_old_objects_readable() {
        let first = Keyring::new_line("2025");
        let old = ring(&[&first]);
        let sealed_before = old.seal_all("a", b"before");
        let rotated = ring(&[&first, &Keyring::new_line("2026")]);
        assert_eq!(rotated.active_id(), "2026");
        let sealed_after = rotated.seal_all("a", b"after");
        assert_eq!(
            rotated.open_all(Some("a"), &sealed_before).unwrap().1,
            b"before"
        );
        assert_eq!(
            rotated.open_all(Some("a"), &sealed_after).unwrap().1,
            b"after"
        );
        let err = old
            .open_all(Some("a"), &sealed_after)
            .unwrap_err()
            .to_string();
        assert!(err.contains("master key `2026`"), "{err}");
    }

    #[test]
    fn bad_keyrings_say_which_line() {
        for (text, says) in [
            ("", "no keys"),
            ("k1", "line 1: expected"),
            ("# c\nk1:!!", "line 2: the key is not base64"),
            ("k1:AAAA", "32 bytes"),
            ("bad id:AAAA", "the id must be"),
        ] {
            let err = Keyring::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let line = Keyring::new_line("k");
        let err = Keyring::parse(&format!("{line}\n{line}")).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        assert!(!format!("{:?}", ring(&[&line])).contains(line.split(':').nth(1).unwrap()));
    }
}
