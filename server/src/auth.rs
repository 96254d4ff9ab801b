//! Bearer tokens: JWTs signed by the gateway with a key that never leaves it.
//!
//! A token carries only its id; its scope (clusters), role, expiry and revocation live in
//! the catalog, which is checked on every request, so revoking takes effect at once and
//! a stolen signing key file alone cannot widen an existing token.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use walgate_core::ClusterName;
use walgate_core::api::Role;

use crate::catalog::{Catalog, CatalogError, Scope, TokenRow};

const ISSUER: &str = "walgate";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no bearer token: send `Authorization: Bearer <token>` (issue one with `walgate token issue`)"
    )]
    Missing,
    #[error("the bearer token is not a valid walgate token for this gateway")]
    Invalid,
    #[error("the token has expired: issue a new one with `walgate token issue`")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("this token may not access cluster `{0}`")]
    WrongCluster(ClusterName),
    #[error("this token's role `{have}` may not do this (needs `{need}`)")]
    Forbidden {
        have: &'static str,
        need: &'static str,
    },
    #[error(
        "a token may live at most {max} seconds (ten years), not {0}; leave the lifetime out for one that never expires",
        max = MAX_LIFETIME.as_secs()
    )]
    Lifetime(u64),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The longest token lifetime accepted: ten years.
pub const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 366 * 86_400);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    /// The token id: the catalog row that says what it may do.
    jti: String,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

/// The signing key. `Debug` never shows it.
#[derive(Clone)]
pub struct Keys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Keys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
        }
    }

    /// Loads the key file, creating it (mode 0600, 32 random bytes, hex) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                let secret = hex::decode(text.trim())
                    .ok()
                    .filter(|s| s.len() >= 32)
                    .with_context(|| {
                        format!(
                            "signing key file {} must hold at least 32 bytes as hex",
                            path.display()
                        )
                    })?;
                Ok(Self::from_secret(&secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("create {}", dir.display()))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("create signing key file {}", path.display()))?;
                writeln!(f, "{}", hex::encode(secret))?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created a new token signing key");
                Ok(Self::from_secret(&secret))
            }
            Err(e) => Err(e).with_context(|| format!("read signing key file {}", path.display())),
        }
    }

    fn sign(&self, row: &TokenRow) -> String {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            jti: row.id.clone(),
            iat: row.created_at.unix_timestamp(),
            exp: row.expires_at.map(OffsetDateTime::unix_timestamp),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    fn token_id(&self, token: &str) -> Result<String, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["iss", "jti"]);
        v.leeway = 0;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
            Ok(data) => Ok(data.claims.jti),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(AuthError::Expired)
            }
            Err(_) => Err(AuthError::Invalid),
        }
    }
}

/// Issues and checks tokens against the catalog.
#[derive(Clone)]
pub struct Authority {
    keys: Keys,
    catalog: Arc<dyn Catalog>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub scope: Scope,
    pub role: Role,
}

impl Caller {
    /// Allows the call if the token covers `cluster` with at least `need`.
    pub fn require(&self, cluster: &ClusterName, need: Role) -> Result<(), AuthError> {
        if !self.scope.covers(cluster) {
            return Err(AuthError::WrongCluster(cluster.clone()));
        }
        self.require_role(need)
    }

    pub fn require_role(&self, need: Role) -> Result<(), AuthError> {
        if !self.role.grants(need) {
            return Err(AuthError::Forbidden {
                have: self.role.as_str(),
                need: need.as_str(),
            });
        }
        Ok(())
    }
}

impl Authority {
    pub fn new(keys: Keys, catalog: Arc<dyn Catalog>) -> Self {
        Authority { keys, catalog }
    }

    /// Records a new token and returns it with its signed form.
    pub async fn issue(
        &self,
        scope: Scope,
        role: Role,
        expires_in: Option<std::time::Duration>,
        description: Option<String>,
    ) -> Result<(TokenRow, String), AuthError> {
        if let Some(d) = expires_in.filter(|d| *d > MAX_LIFETIME) {
            return Err(AuthError::Lifetime(d.as_secs()));
        }
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond");
        let row = TokenRow {
            id: uuid::Uuid::new_v4().simple().to_string(),
            scope,
            role,
            description,
            created_at: now,
            expires_at: expires_in.map(|d| now + d),
            revoked_at: None,
        };
        self.catalog.insert_token(&row).await?;
        let token = self.keys.sign(&row);
        Ok((row, token))
    }

    /// Checks a bearer token: signature, then the catalog row (expiry, revocation).
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let id = self.keys.token_id(token)?;
        let row = self.catalog.token(&id).await?.ok_or(AuthError::Invalid)?;
        if row.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if row
            .expires_at
            .is_some_and(|t| t <= OffsetDateTime::now_utc())
        {
            return Err(AuthError::Expired);
        }
        Ok(Caller {
            token_id: row.id,
            scope: row.scope,
            role: row.role,
        })
    }
}

/// Anyone who can read the signing key can forge any token. A key readable by every
/// local user is refused; one readable by its group (a Kubernetes secret mounted with
/// `fsGroup`) is allowed with a warning.
fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    anyhow::ensure!(
        mode & 0o007 == 0,
        "signing key file {} is readable by every local user (mode {mode:o}): anyone who read it \
         can forge tokens. `chmod 600` it, and if others may have read it, replace it with a new \
         key (`openssl rand -hex 32`) and issue every token again",
        path.display()
    );
    if mode & 0o070 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the signing key file is readable by its group: make sure only the gateway's user is in it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SqliteCatalog;

    async fn authority() -> (tempfile::TempDir, Authority) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/c.db", dir.path().display());
        let catalog = Arc::new(SqliteCatalog::open(&url).await.unwrap());
        (dir, Authority::new(Keys::from_secret(&[7; 32]), catalog))
    }

    #[test]
    fn a_signing_key_every_local_user_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        Keys::load_or_create(&path).unwrap();
        let mode = |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        mode(0o644).unwrap();
        let err = Keys::load_or_create(&path).err().unwrap().to_string();
        assert!(
            err.contains("readable by every local user (mode 644)"),
            "{err}"
        );
        for allowed in [0o600, 0o400, 0o640] {
            mode(allowed).unwrap();
            Keys::load_or_create(&path).unwrap();
        }
    }

    #[tokio::test]
    async fn scopes_roles_expiry_and_revocation() {
        let (_dir, auth) = authority().await;
        let a: ClusterName = "a".parse().unwrap();
        let b: ClusterName = "b".parse().unwrap();
        let (row, token) = auth
            .issue(Scope::Clusters(vec![a.clone()]), Role::Archiver, None, None)
            .await
            .unwrap();
        let caller = auth.verify(&token).await.unwrap();
        assert!(caller.require(&a, Role::Archiver).is_ok());
        assert!(caller.require(&a, Role::Restorer).is_ok());
        assert!(matches!(
            caller.require(&a, Role::Admin),
            Err(AuthError::Forbidden { .. })
        ));
        assert!(matches!(
            caller.require(&b, Role::Viewer),
            Err(AuthError::WrongCluster(_))
        ));

        let (_, viewer) = auth
            .issue(Scope::Clusters(vec![a.clone()]), Role::Viewer, None, None)
            .await
            .unwrap();
        let viewer = auth.verify(&viewer).await.unwrap();
        assert!(matches!(
            viewer.require(&a, Role::Restorer),
            Err(AuthError::Forbidden { .. })
        ));

        let (_, admin) = auth
            .issue(Scope::All, Role::Admin, None, None)
            .await
            .unwrap();
        assert!(
            auth.verify(&admin)
                .await
                .unwrap()
                .require(&b, Role::Admin)
                .is_ok()
        );

        assert!(
            auth.catalog
                .revoke_token(&row.id, OffsetDateTime::now_utc())
                .await
                .unwrap()
        );
        assert!(matches!(auth.verify(&token).await, Err(AuthError::Revoked)));

        // Expiry is checked against the clock, without waiting on it: a token with an
        // hour left works, one whose lifetime is over does not.
        let hour = Some(std::time::Duration::from_secs(3600));
        let (_, live) = auth
            .issue(Scope::All, Role::Viewer, hour, None)
            .await
            .unwrap();
        assert!(auth.verify(&live).await.is_ok());
        let over = Some(std::time::Duration::ZERO);
        let (_, short) = auth
            .issue(Scope::All, Role::Viewer, over, None)
            .await
            .unwrap();
        assert!(matches!(auth.verify(&short).await, Err(AuthError::Expired)));
    }

    #[tokio::test]
    async fn refuses_forged_and_foreign_tokens() {
        let (_dir, auth) = authority().await;
        let (row, token) = auth
            .issue(Scope::All, Role::Admin, None, None)
            .await
            .unwrap();
        for bad in ["", "x", "a.b.c", &format!("{token}x")] {
            assert!(
                matches!(auth.verify(bad).await, Err(AuthError::Invalid)),
                "{bad}"
            );
        }
        // Signed by another gateway's key: same id, still refused.
        let other = Keys::from_secret(&[8; 32]);
        assert!(matches!(
            auth.verify(&other.sign(&row)).await,
            Err(AuthError::Invalid)
        ));
    }
}
