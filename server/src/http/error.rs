//! The HTTP error: every failure of every layer becomes a status and a JSON body
//! `{"error": code, "message": …}` here, and only here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use walgate_core::api::{ErrorBody, ErrorCode};

use crate::archive::ArchiveError;
use crate::auth::AuthError;
use crate::backup::BackupError;
use crate::catalog::CatalogError;
use crate::drill::DrillError;
use crate::limits::Busy;
use crate::restore::LoadError;
use crate::retention::RetentionError;
use crate::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for a `Retry-After` header, when waiting will help.
    pub retry_after: Option<u32>,
    /// The caller's token is for other clusters: see [`OtherCluster`].
    pub other_cluster: bool,
}

/// Marks the answer to a token scoped to other clusters. Metrics do not count it
/// against the cluster it named: a token for one cluster must not be able to add
/// series by inventing names, or push another cluster's real errors off its list.
#[derive(Debug, Clone, Copy)]
pub struct OtherCluster;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            other_cluster: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A failure of the gateway itself: logged in full, reported without internals.
    fn internal(err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the gateway could not complete the request; nothing was acknowledged, retry later (details are in the gateway's log)",
        )
    }
}

/// How long to wait after the object store or the catalog failed.
const STORAGE_RETRY_AFTER: u32 = 10;

impl ApiError {
    /// 503 with `Retry-After`: nothing was acknowledged, and trying again soon will help.
    fn retry_later(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(STORAGE_RETRY_AFTER),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// The catalog failed: unreachable or busy is worth a retry (503), anything else is
    /// the gateway's own failure (500).
    fn catalog(e: &CatalogError) -> Self {
        if !e.is_unavailable() {
            return Self::internal(e);
        }
        tracing::error!(error = %e, "catalog unavailable");
        Self::retry_later(
            ErrorCode::CatalogUnavailable,
            "the gateway's catalog is unavailable; nothing was acknowledged, retry later (details are in the gateway's log)",
        )
    }

    /// The object store failed or is not configured: the client should retry, since the
    /// store (not the request) is at fault. A missing object the catalog lists is the
    /// gateway's own failure.
    fn storage(e: &StorageError) -> Self {
        let message = match e {
            StorageError::NotFound(_) => return Self::internal(e),
            StorageError::Crypt(c) => {
                tracing::error!(error = %c, "stored object cannot be read");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::UnreadableObject,
                    c.to_string(),
                );
            }
            StorageError::UnknownTarget(_) => e.to_string(),
            StorageError::Locked { .. } => {
                return Self::new(StatusCode::CONFLICT, ErrorCode::Locked, e.to_string());
            }
            _ => "the object store did not complete the request; nothing was acknowledged, retry later (details are in the gateway's log)".to_owned(),
        };
        tracing::error!(error = %e, "object store failed");
        Self::retry_later(ErrorCode::StorageUnavailable, message)
    }
}

/// The error a response carries, for the per-cluster list of recent errors.
#[derive(Debug, Clone)]
pub struct ErrorNote(pub ErrorBody);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: self.message,
        };
        let note = ErrorNote(body.clone());
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(note);
        if self.other_cluster {
            response.extensions_mut().insert(OtherCluster);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match &e {
            AuthError::Missing | AuthError::Invalid | AuthError::Expired | AuthError::Revoked => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
            }
            AuthError::WrongCluster(_) | AuthError::Forbidden { .. } => {
                (StatusCode::FORBIDDEN, ErrorCode::Forbidden)
            }
            AuthError::Lifetime(_) => return Self::bad_request(e.to_string()),
            AuthError::Catalog(c) => return Self::catalog(c),
        };
        ApiError {
            other_cluster: matches!(e, AuthError::WrongCluster(_)),
            ..Self::new(status, code, e.to_string())
        }
    }
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        use ArchiveError as A;
        let (status, code) = match &e {
            A::BadHeader { .. }
            | A::WrongPosition { .. }
            | A::WrongSize { .. }
            | A::Empty { .. }
            | A::FirstSegmentUnsized { .. }
            | A::BadHistory { .. } => (StatusCode::BAD_REQUEST, ErrorCode::BadContent),
            A::WrongSegmentSize { .. } => (StatusCode::BAD_REQUEST, ErrorCode::WrongSegmentSize),
            A::Body(_) if e.is_idle() => (StatusCode::REQUEST_TIMEOUT, ErrorCode::Timeout),
            A::Body(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadBody),
            A::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            A::WrongSystem { .. } | A::WrongVersion { .. } => {
                (StatusCode::CONFLICT, ErrorCode::WrongSystem)
            }
            A::Conflict { .. } | A::FarAhead { .. } => (StatusCode::CONFLICT, ErrorCode::Conflict),
            A::BeingDeleted { .. } => {
                return Self::retry_later(ErrorCode::BeingDeleted, e.to_string());
            }
            A::Busy { .. } => return Self::retry_later(ErrorCode::Busy, e.to_string()),
            A::Stored(_) => return Self::internal(&e),
            A::Catalog(c) => return Self::catalog(c),
            A::Storage(s) => return Self::storage(s),
        };
        tracing::warn!(error = %e, "WAL file refused");
        Self::new(status, code, e.to_string())
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        use BackupError as B;
        let (status, code) = match &e {
            B::NotABackup(_) => (StatusCode::BAD_REQUEST, ErrorCode::NotABackup),
            B::Body(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadBody),
            B::WrongSystem { .. } | B::WrongVersion { .. } => {
                (StatusCode::CONFLICT, ErrorCode::WrongSystem)
            }
            B::Duplicate(_) | B::BeyondArchive { .. } => {
                (StatusCode::CONFLICT, ErrorCode::Conflict)
            }
            B::NoParent { .. }
            | B::ParentNotComplete { .. }
            | B::NotTheNamedParent { .. }
            | B::ParentOfAFullBackup(_)
            | B::ChainTooLong { .. }
            | B::BrokenChain(_) => (StatusCode::CONFLICT, ErrorCode::NoParent),
            B::ParentOfOtherSystem { .. } => (StatusCode::CONFLICT, ErrorCode::WrongSystem),
            B::HasDependants { .. } => (StatusCode::CONFLICT, ErrorCode::HasDependants),
            B::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            B::ManifestsBusy => return Self::retry_later(ErrorCode::Busy, e.to_string()),
            B::DeletedWhileUploading(_) => (StatusCode::CONFLICT, ErrorCode::Deleted),
            B::Locked { .. } => (StatusCode::CONFLICT, ErrorCode::Locked),
            B::Catalog(c) => return Self::catalog(c),
            B::Storage(s) => return Self::storage(s),
        };
        tracing::warn!(error = %e, "backup request refused");
        Self::new(status, code, e.to_string())
    }
}

impl From<RetentionError> for ApiError {
    fn from(e: RetentionError) -> Self {
        match e {
            RetentionError::Catalog(c) => c.into(),
            RetentionError::Storage(s) => s.into(),
            RetentionError::Backup(b) => b.into(),
            RetentionError::Load(l) => l.into(),
            RetentionError::Locked(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::Locked, e.to_string())
            }
            RetentionError::Undeleted(_) => {
                Self::retry_later(ErrorCode::StorageUnavailable, e.to_string())
            }
        }
    }
}

/// How long a refused backup upload should wait before trying again.
const BACKUP_RETRY_AFTER: u32 = 60;

impl From<DrillError> for ApiError {
    fn from(e: DrillError) -> Self {
        let (status, code) = match &e {
            DrillError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            DrillError::NotRunning(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            DrillError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            DrillError::Catalog(c) => return Self::catalog(c),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<Busy> for ApiError {
    fn from(e: Busy) -> Self {
        let status = match e {
            Busy::Cluster(..) => StatusCode::TOO_MANY_REQUESTS,
            Busy::Gateway(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = format!("{e}; retry in {BACKUP_RETRY_AFTER} s");
        ApiError {
            retry_after: Some(BACKUP_RETRY_AFTER),
            ..Self::new(status, ErrorCode::Busy, message)
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Catalog(c) => c.into(),
            LoadError::Archive(a) => a.into(),
            LoadError::BadHistory { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NotReachable,
                e.to_string(),
            ),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        Self::catalog(&e)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self::storage(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_catalog_is_worth_a_retry_and_a_broken_one_is_not() {
        let down = ApiError::from(CatalogError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(
            (down.status, down.code, down.retry_after),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::CatalogUnavailable,
                Some(10)
            )
        );
        let broken = ApiError::from(CatalogError::Corrupt("a bad row".into()));
        assert_eq!(
            (broken.status, broken.retry_after),
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        );
    }
}
