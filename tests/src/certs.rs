//! TLS material for the HTTPS tests: a throwaway CA and a server certificate it signed,
//! made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;

/// A certificate for `127.0.0.1` and `localhost`, signed by a new CA, made with the
/// `openssl` command in `dir`: returns the CA's PEM, the certificate and its key.
pub fn make_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let script = format!(
        "set -e
         openssl req -x509 {ec} -keyout {name}-ca.key -out {name}-ca.pem -days 2 -subj '/CN=walgate test CA'
         openssl req {ec} -keyout {name}-key.pem -out {name}.csr -subj /CN=localhost
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > {name}.ext
         openssl x509 -req -in {name}.csr -CA {name}-ca.pem -CAkey {name}-ca.key -CAcreateserial \\
             -days 2 -extfile {name}.ext -out {name}-cert.pem"
    );
    run(Command::new("sh").arg("-c").arg(script).current_dir(dir))
        .expect("make a certificate with openssl (install the openssl package)");
    let file = |f: String| dir.join(f);
    (
        file(format!("{name}-ca.pem")),
        file(format!("{name}-cert.pem")),
        file(format!("{name}-key.pem")),
    )
}
