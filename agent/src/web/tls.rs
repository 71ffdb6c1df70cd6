// SPDX-License-Identifier: GPL-2.0-only
//! Self-signed TLS material for the API, generated once into `state_dir/tls`.

use std::{
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cert_path: PathBuf,
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Load `tls/cert.pem` + `tls/key.pem`, generating them if absent. The certificate
/// names localhost, 127.0.0.1, ::1 and the listen address.
pub fn load_or_generate(state_dir: &Path, listen_ip: IpAddr) -> Result<TlsMaterial> {
    let dir = state_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(TlsMaterial {
            cert_pem: std::fs::read(&cert_path)
                .with_context(|| format!("reading {}", cert_path.display()))?,
            key_pem: std::fs::read(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?,
            cert_path,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen_ip.is_unspecified() && !names.contains(&listen_ip.to_string()) {
        names.push(listen_ip.to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .context("generating the self-signed certificate")?;
    let cert_pem = ck.cert.pem().into_bytes();
    let key_pem = ck.key_pair.serialize_pem().into_bytes();
    write_private(&key_path, &key_pem)?;
    std::fs::write(&cert_path, &cert_pem)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "Generated a self-signed API certificate.");
    Ok(TlsMaterial {
        cert_pem,
        key_pem,
        cert_path,
    })
}
