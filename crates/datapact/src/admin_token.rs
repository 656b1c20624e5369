//! The admin token: from `DATAPACT_ADMIN_TOKEN`, or generated once into the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Returns the admin token, creating `admin-token` (mode 0600) on first use.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("DATAPACT_ADMIN_TOKEN") {
        anyhow::ensure!(token.len() >= 32, "DATAPACT_ADMIN_TOKEN must be at least 32 characters");
        return Ok(token);
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
    let token = format!("dpa_{}", hex::encode(bytes));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{token}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}
