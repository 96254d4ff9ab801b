//! The curl recipes for `archive_command` and `restore_command`, written once: the
//! README shows them, the gateway puts the restore one in restore plans, and the tests
//! run exactly these.

/// Where the recipes expect the `Authorization: Bearer …` header line on a host.
pub const AUTH_HEADER_FILE: &str = "/etc/walgate/auth-header";

/// `archive_command`: exits 0 only when the gateway acknowledged the file as durable.
pub fn curl_archive_command(gateway_url: &str, cluster: &str, header_file: &str) -> String {
    format!(
        "curl -sS --fail --retry 3 -H @{header_file} -T %p {gateway_url}/v1/clusters/{cluster}/wal/%f"
    )
}

/// `restore_command`: exits 1 ("not archived") only for a 404, and 200 (above 125, so
/// recovery stops instead of ending early) when the gateway cannot be asked. A transfer
/// cut after a 200 fails curl but still prints 200: it counts as not asked, so a short
/// file (a history file has no size PostgreSQL could check) never takes the name.
pub fn curl_restore_command(gateway_url: &str, cluster: &str, header_file: &str) -> String {
    format!(
        "c=$(curl -sS --retry 5 --retry-connrefused --retry-max-time 60 -H @{header_file} \
         -o \"%p.part\" -w \"%%{{http_code}}\" {gateway_url}/v1/clusters/{cluster}/wal/%f) || c=cut; \
         case $c in 200) mv \"%p.part\" \"%p\";; 404) rm -f \"%p.part\"; exit 1;; \
         *) rm -f \"%p.part\"; exit 200;; esac"
    )
}
