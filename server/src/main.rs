//! `walgate`: the gateway binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use tracing_subscriber::EnvFilter;
use walgate::catalog::Scope;
use walgate::http::{self, AppState};
use walgate::settings::{self, LogFormat, Settings, StateSettings};
use walgate::storage::crypt::Keyring;
use walgate::{Services, tls};
use walgate_core::api::Role;

/// jemalloc gives the memory of a burst of WAL uploads back to the system within seconds
/// of its end; glibc's allocator kept what libzstd freed in its per-thread arenas, and
/// the gateway near its peak RSS for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// HTTP backup gateway for PostgreSQL.
///
/// Database hosts archive WAL to the gateway with curl or walgate-client and fetch it
/// back for recovery; the gateway holds the storage credentials and the catalog.
/// Run `walgate serve` to start it on embedded defaults (SQLite catalog and local
/// objects under ./walgate-data), then `walgate token issue` to let hosts in.
#[derive(Parser)]
#[command(name = "walgate", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(Box<Settings>),
    /// Apply catalog migrations and exit (`serve` also applies them at start).
    Migrate {
        #[command(flatten)]
        state: StateSettings,
    },
    /// Issue, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Catalog maintenance.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Encryption keyrings for storage targets (`encryption_keyring`).
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Decrypt an object copied out of the bucket, without a gateway:
    /// `walgate decrypt --keyring FILE OBJECT | zstd -d > FILE` (WAL and base backups are
    /// zstd inside). Checks every byte; on failure exits 1 and removes --output.
    Decrypt {
        /// The keyring the object was written with (any later one holding its key).
        #[arg(long, env = "WALGATE_KEYRING", value_name = "FILE")]
        keyring: PathBuf,
        /// The encrypted object [default: stdin].
        input: Option<PathBuf>,
        /// Where to write the plaintext [default: stdout].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check that a cluster can be restored: its WAL chain from every backup on every
    /// timeline, and with --scrub every stored object against its checksum. Exits 1 when
    /// it finds a problem.
    Verify {
        #[command(flatten)]
        state: StateSettings,
        cluster: walgate_core::ClusterName,
        /// Re-read every stored object (reads the whole archive).
        #[arg(long)]
        scrub: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyringCommand {
    /// Append a new random master key to FILE (created, mode 0600, if missing). After
    /// the gateway restarts it encrypts new objects; objects written before keep naming
    /// their own key, so keep every older key in the file.
    Add {
        file: PathBuf,
        /// The key's id [default: the current UTC time, e.g. 20261127-104500].
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Recreate the catalog of every cluster from the object store alone (after losing
    /// the catalog database): WAL files from their objects, backups from their sentinels.
    /// Rows already present are kept. Tokens are not in the store: issue new ones.
    Rebuild {
        #[command(flatten)]
        state: StateSettings,
        /// Print what was found as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token and print it on stdout (it is shown only once).
    ///
    /// Example, for a database host's archive_command:
    ///   walgate token issue --cluster main --role archiver > /etc/walgate/token
    Issue {
        #[command(flatten)]
        state: StateSettings,
        /// Cluster the token may access; repeat for several, or `*` for all.
        #[arg(long = "cluster", required = true, value_name = "NAME")]
        clusters: Vec<String>,
        /// viewer (read metadata), restorer (+ fetch WAL), archiver (+ push WAL), admin (all),
        /// driller (a restorer that also runs restore drills: `walgate-client drill-runner`).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime, e.g. `90d` or `12h` [default: does not expire; revoke it instead].
        #[arg(long, value_name = "DURATION")]
        expires: Option<humantime::Duration>,
        /// Free text shown in `token list`, e.g. the host it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        state: StateSettings,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        #[command(flatten)]
        state: StateSettings,
        id: String,
    },
}

fn keyring_add(file: &Path, id: Option<String>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let id = match id {
        Some(id) => id,
        None => OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .expect("formattable"),
    };
    let existing = std::fs::read_to_string(file).unwrap_or_default();
    let line = Keyring::new_line(&id);
    // The whole keyring must still parse: a duplicate id or a damaged line stops here.
    Keyring::parse(&format!("{existing}\n{line}"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    writeln!(f, "{sep}{line}")?;
    f.sync_all()?;
    eprintln!(
        "added key `{id}` to {}; restart the gateway to encrypt new objects with it, and keep the older keys",
        file.display()
    );
    Ok(())
}

/// Streams `input` through the keyring's unsealer to `output`.
fn decrypt(keyring: &Path, input: Option<&Path>, output: Option<&Path>) -> anyhow::Result<()> {
    use std::io::Read as _;
    let ring = Keyring::load(keyring)?;
    let mut reader: Box<dyn std::io::Read> = match input {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?)
        }
        None => Box::new(std::io::stdin().lock()),
    };
    let mut writer: Box<dyn std::io::Write> = match output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut unsealer = ring.unsealer(None);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).context("read the object")?;
        if n == 0 {
            break;
        }
        for plain in unsealer.push(&buf[..n])? {
            writer.write_all(&plain)?;
        }
    }
    let (object, last) = unsealer.finish()?;
    writer.write_all(&last)?;
    writer.flush()?;
    eprintln!("decrypted {object}");
    Ok(())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_env("WALGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One crypto provider for every TLS user in the process (rustls refuses to guess
    // when more than one is compiled in).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The catalog, the local store's objects (database contents) and keys are for this
    // user alone, whatever umask the shell or container gave.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match settings::parse::<Cli>()?.command {
        Command::Serve(settings) => {
            init_logs(settings.log_format);
            run(*settings).await
        }
        Command::Migrate { state } => {
            let url = state.catalog_url()?;
            walgate::catalog::open(url.expose()).await?;
            eprintln!("catalog {url} is up to date");
            Ok(())
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Catalog(CatalogCommand::Rebuild { state, json }) => {
            let state = open_state(state).await?;
            let found = walgate::rebuild::rebuild(&state).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                for p in &found.problems {
                    eprintln!("walgate: skipped {p}");
                }
                eprintln!(
                    "rebuilt the catalog: {} WAL files and {} backups from the object store; issue tokens again with `walgate token issue`",
                    found.wal_files, found.backups
                );
            }
            anyhow::ensure!(
                found.problems.is_empty(),
                "{} objects could not be read back",
                found.problems.len()
            );
            Ok(())
        }
        Command::Keyring(KeyringCommand::Add { file, id }) => keyring_add(&file, id),
        Command::Decrypt {
            keyring,
            input,
            output,
        } => {
            let result = decrypt(&keyring, input.as_deref(), output.as_deref());
            if let (Err(_), Some(out)) = (&result, &output) {
                let _ = std::fs::remove_file(out);
            }
            result
        }
        Command::Openapi => {
            println!("{}", http::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Verify {
            state,
            cluster,
            scrub,
            json,
        } => {
            let state = open_state(state).await?;
            let row = state
                .catalog
                .cluster(&cluster)
                .await?
                .with_context(|| format!("no cluster `{cluster}` in the catalog"))?;
            let report = walgate::verify::verify(&state, &row, scrub).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in report.chain_problems.iter().chain(&report.object_problems) {
                    println!("problem: {p}");
                }
                println!(
                    "{cluster}: {} ({} objects re-read)",
                    if report.ok { "ok" } else { "PROBLEMS FOUND" },
                    report.objects_checked
                );
            }
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Serves until SIGTERM; on SIGHUP reads the settings again, for the limits that may
/// change without a restart.
async fn run(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(?settings, "starting");
    let tls_files = settings.tls()?;
    let data_dir = settings.state.data_dir()?;
    let services = Services::open(settings).await?;
    let settings = services.settings.clone();
    let state = AppState::new(services.clone())?;
    tokio::spawn(reload_limits(services.limits.bandwidth.clone()));
    for store in services.storage.iter() {
        store.probe(true).await?;
        tracing::info!(target = %store.target(), url = store.url(), "storage target ok");
    }
    if services.catalog.tokens().await?.is_empty() {
        tracing::warn!(
            "no tokens yet: create an admin token with `walgate token issue --data-dir {} --cluster '*' --role admin`",
            data_dir.display()
        );
    }
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("listen on {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    // Keepalive probes notice hosts that vanished mid-request (a backup upload may be
    // silent for minutes while its checkpoint runs); accepted connections inherit it.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10));
    socket2::SockRef::from(&listener).set_tcp_keepalive(&keepalive)?;
    let addr = listener.local_addr()?;
    let app = http::app(state.clone());
    if !settings.retention_interval.is_zero() {
        tokio::spawn(walgate::retention::schedule(
            services.clone(),
            settings.retention_interval,
        ));
    }
    if !settings.verify_interval.is_zero() {
        tokio::spawn(walgate::verify::schedule(
            services.clone(),
            settings.verify_interval,
        ));
    }
    let scheme = if tls_files.is_some() { "https" } else { "http" };
    // The one line on stdout: lets scripts and tests find a port chosen with :0.
    println!("walgate listening on {scheme}://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, scheme, catalog = services.catalog.backend(), default_target = %services.storage.default_target(), "ready");
    // SIGTERM: turn unready, wait for load balancers to notice, then stop accepting and
    // give requests in flight until the deadline. At the deadline, backup uploads still
    // running are cut and clean up after themselves, so none is left half-written.
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let (state, handle) = (state.clone(), handle.clone());
        let (delay, timeout) = (settings.drain_delay, settings.shutdown_timeout);
        async move {
            shutdown_signal().await;
            state.draining.store(true, Ordering::Relaxed);
            tracing::info!(
                ?delay,
                "shutting down: /readyz answers 503 while load balancers drain"
            );
            tokio::time::sleep(delay).await;
            tracing::info!("no longer accepting connections; finishing requests in flight");
            handle.graceful_shutdown(None);
            tokio::time::sleep(timeout).await;
            if handle.connection_count() > 0 {
                tracing::warn!(
                    ?timeout,
                    "shutdown deadline passed: cutting off requests still in flight"
                );
            }
            state.cut_uploads.cancel();
            handle.shutdown();
        }
    });
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // A client that opens a connection and sends its headers slowly, or never, would
    // hold it (and a file descriptor) for ever: as silent as a WAL body may be, at most
    // hyper's 30 s, ends it.
    let header_timeout = settings
        .wal_idle_timeout
        .min(std::time::Duration::from_secs(30));
    let fds = walgate::connections::raise_fd_limit();
    let cap = walgate::connections::Capped::new(
        settings
            .max_connections
            .unwrap_or_else(|| walgate::connections::default_cap(fds)),
    );
    let last_accept_error = std::sync::Mutex::new(None);
    let mut server = axum_server::from_tcp(listener)?
        .handle(handle)
        .first_request_timeout(header_timeout)
        .accept_error_handler(move |addr, error| {
            // With an address, the cap closed it and has said so.
            if addr.is_none() {
                walgate::connections::accept_failed(&last_accept_error, error);
            }
        });
    server
        .http_builder()
        .http1()
        .header_read_timeout(header_timeout);
    match &tls_files {
        None => server
            .acceptor(cap)
            .serve(service)
            .await
            .context("serve HTTP")?,
        Some(files) => {
            let config = RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .with_context(|| {
                    format!(
                        "load TLS certificate {} and key {}",
                        files.cert.display(),
                        files.key.display()
                    )
                })?;
            tokio::spawn(tls::reload(config.clone(), files.clone()));
            server
                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(cap))
                .serve(service)
                .await
                .context("serve HTTPS")?
        }
    }
    state.cut_uploads.cancel();
    let cleanup = tokio::time::Instant::now();
    let uploads = &services.limits.uploads;
    while uploads.running() > 0 && cleanup.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if uploads.running() > 0 {
        tracing::warn!(
            "backup uploads still cleaning up at exit; the next deletion of them finishes the job"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// On SIGHUP, applies the backup bandwidth limits from the settings read again.
async fn reload_limits(bandwidth: walgate::limits::Bandwidth) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot watch SIGHUP; limits change only with a restart");
        return;
    };
    while hup.recv().await.is_some() {
        // Every error returned, none printed with an exit as at start.
        match settings::parse_from::<Cli>(std::env::args_os()) {
            Ok(Cli {
                command: Command::Serve(s),
            }) => {
                bandwidth.set(s.backup_rates());
                tracing::info!(limits = ?s.backup_rates(), "backup bandwidth limits reloaded");
            }
            Ok(_) => unreachable!("the command line of `walgate serve` parses as serve"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "settings not reloaded; the limits in use stay")
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn open_state(state: StateSettings) -> anyhow::Result<Services> {
    Services::open(Settings::for_state(state)?).await
}

async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue {
            state,
            clusters,
            role,
            expires,
            description,
        } => {
            let scope: Scope = clusters
                .join(",")
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?;
            let app = open_state(state).await?;
            let (row, token) = app
                .auth
                .issue(scope, role, expires.map(Into::into), description)
                .await?;
            eprintln!(
                "issued token {} ({} on {})",
                row.id,
                role.as_str(),
                row.scope.encode()
            );
            println!("{token}");
        }
        TokenCommand::List { state, json } => {
            let app = open_state(state).await?;
            let rows: Vec<_> = app
                .catalog
                .tokens()
                .await?
                .iter()
                .map(|t| t.to_api())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<32}  {:<8}  {:<24}  {:<20}  STATUS",
                    "ID", "ROLE", "CLUSTERS", "EXPIRES"
                );
                for t in rows {
                    let status = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    let expires = t
                        .expires_at
                        .map(|e| e.date().to_string())
                        .unwrap_or_else(|| "never".into());
                    println!(
                        "{:<32}  {:<8}  {:<24}  {:<20}  {status}",
                        t.id,
                        t.role.as_str(),
                        t.clusters.join(","),
                        expires
                    );
                }
            }
        }
        TokenCommand::Revoke { state, id } => {
            let app = open_state(state).await?;
            let found = app
                .catalog
                .revoke_token(&id, time::OffsetDateTime::now_utc())
                .await?;
            anyhow::ensure!(found, "no token with id {id}: see `walgate token list`");
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
