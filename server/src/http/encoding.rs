//! Content encodings on the wire: which a request body uses, and serving a stored zstd
//! object either as stored (`Accept-Encoding: zstd`) or decoded.

use async_compression::tokio::bufread::ZstdDecoder;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use tokio_util::io::{ReaderStream, StreamReader};
use walgate_core::api::ErrorCode;

use super::error::ApiError;
use crate::storage::StorageError;
use crate::stream::Encoding;

/// The request body's `Content-Encoding`, if it is one of `allowed`.
pub fn content_encoding(headers: &HeaderMap, allowed: &[Encoding]) -> Result<Encoding, ApiError> {
    let found = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => Some(Encoding::Identity),
        Some("zstd") => Some(Encoding::Zstd),
        Some("gzip") | Some("x-gzip") => Some(Encoding::Gzip),
        Some(_) => None,
    };
    found.filter(|e| allowed.contains(e)).ok_or_else(|| {
        let names: Vec<_> = allowed.iter().map(|e| e.as_str()).collect();
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedEncoding,
            format!(
                "this Content-Encoding is not supported here: send the body as {}",
                names.join(", ")
            ),
        )
    })
}

/// Whether the request accepts zstd (and does not refuse it with `q=0`).
pub fn accepts_zstd(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';').map(str::trim);
            parts.next() == Some("zstd") && !parts.any(|p| p == "q=0" || p == "q=0.0")
        })
}

/// Streams a stored zstd object: as stored when the client accepts zstd, else decoded.
/// `size` is the decoded length, `stored_size` the stored one.
pub fn stored_response(
    stored: BoxStream<'static, Result<bytes::Bytes, StorageError>>,
    headers: &HeaderMap,
    size: u64,
    stored_size: u64,
    content_type: &'static str,
) -> Response {
    let stored = stored.map_err(std::io::Error::other);
    let mut response = if accepts_zstd(headers) {
        let mut r = Response::new(Body::from_stream(stored));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, stored_size.into());
        r
    } else {
        let mut decoder = ZstdDecoder::new(StreamReader::new(stored));
        decoder.multiple_members(true);
        // Large pieces: the default 4 KiB made 4096 body frames of a 16 MiB segment.
        let decoded = ReaderStream::with_capacity(decoder, 256 << 10).map_err(|e| {
            tracing::error!(error = %e, "a stored object could not be decoded");
            e
        });
        let mut r = Response::new(Body::from_stream(decoded));
        r.headers_mut().insert(header::CONTENT_LENGTH, size.into());
        r
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_parsed() {
        let mut h = HeaderMap::new();
        assert!(!accepts_zstd(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, zstd;q=0.9"),
        );
        assert!(accepts_zstd(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("zstd;q=0"),
        );
        assert!(!accepts_zstd(&h));
    }

    #[test]
    fn content_encodings_are_checked_against_what_is_allowed() {
        let mut h = HeaderMap::new();
        assert_eq!(
            content_encoding(&h, &[Encoding::Identity]).unwrap(),
            Encoding::Identity
        );
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(content_encoding(&h, &[Encoding::Identity, Encoding::Zstd]).is_err());
        assert_eq!(
            content_encoding(&h, &[Encoding::Gzip]).unwrap(),
            Encoding::Gzip
        );
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(
            content_encoding(&h, &[Encoding::Identity, Encoding::Zstd, Encoding::Gzip]).is_err()
        );
    }
}
