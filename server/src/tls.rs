//! HTTPS: the certificate is reloaded on SIGHUP and when its files change, so renewing a
//! certificate (certbot, cert-manager) needs no restart and drops no connection.

use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;

use crate::settings::TlsFiles;

/// How often the files' modification times are compared.
const POLL: Duration = Duration::from_secs(10);

fn modified(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

/// Runs for the life of the server. A certificate that fails to load is logged and the
/// one in use stays.
pub async fn reload(config: RustlsConfig, files: TlsFiles) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP; TLS reloads only on file changes");
            return;
        }
    };
    let mut seen = modified(&files);
    loop {
        let asked = tokio::select! {
            _ = hup.recv() => true,
            () = tokio::time::sleep(POLL) => false,
        };
        let now = modified(&files);
        if !asked && now == seen {
            continue;
        }
        match config.reload_from_pem_file(&files.cert, &files.key).await {
            Ok(()) => {
                seen = now;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(
                cert = %files.cert.display(),
                error = %e,
                "TLS certificate reload failed; still serving the previous one"
            ),
        }
    }
}
