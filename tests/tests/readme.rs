//! The README's recipes are the ones the code and the end-to-end tests use.

use walgate_core::recipe::{curl_archive_command, curl_restore_command};

#[test]
fn readme_shows_the_tested_recipes() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let (url, header) = ("http://backup.internal:8432", "/etc/walgate/auth-header");
    for recipe in [
        curl_archive_command(url, "main", header),
        curl_restore_command(url, "main", header),
    ] {
        assert!(
            readme.contains(&format!("'{recipe}'")),
            "README lacks the recipe:\n{recipe}"
        );
    }
}
