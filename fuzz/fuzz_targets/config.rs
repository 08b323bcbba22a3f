//! `Config::parse` on any UTF-8 text: it returns a config or a `ConfigError`, never panics.
//!
//! The text is parsed as if read from `node.toml` in a directory made once per process that
//! holds the certificate files the example configs name (`certs/ca.pem`, `certs/a.pem`, ...) and
//! a `files/` directory, so validation gets past the checks that look at the disk.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_node::config::Config;

fn config_path() -> &'static PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PATH
        .get_or_init(|| {
            let dir = tandem_fuzz::scratch_dir("tandem-fuzz-config-");
            let certs = dir.path().join("certs");
            std::fs::create_dir_all(&certs).unwrap();
            for file in ["ca.pem", "a.pem", "a.key", "b.pem", "b.key"] {
                std::fs::write(certs.join(file), "x").unwrap();
            }
            std::fs::create_dir_all(dir.path().join("files/a")).unwrap();
            std::fs::create_dir_all(dir.path().join("files/b")).unwrap();
            let path = dir.path().join("node.toml");
            (dir, path)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, config_path()) {
        // What the node computes from a config it accepted must not panic either.
        let _ = config.digest();
    }
});
