//! A throwaway certificate authority for TLS etcd tests: a CA, a server
//! certificate for 127.0.0.1/localhost and a client certificate, made with
//! the `openssl` command (Debian's `openssl`, installed by setup.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::etcd::EtcdTls;

/// The PEM files of a test PKI, in one directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from another CA, which the server must refuse.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running openssl (apt-get install -y openssl): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn ca(dir: &Path, name: &str) -> Result<(), String> {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subj = format!("/CN=aksnet test {name}");
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
    args.extend(EC);
    args.extend([
        "-keyout",
        &key,
        "-out",
        &pem,
        "-subj",
        &subj,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args)
}

fn leaf(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) -> Result<(), String> {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extfile), ext).map_err(|e| e.to_string())?;
    let subj = format!("/CN={cn}");
    let mut args = vec!["req", "-nodes"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args)?;
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    )
}

impl TestPki {
    /// Makes the CA, server, client and rogue certificates in `dir`.
    pub fn generate(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        ca(dir, "ca")?;
        ca(dir, "rogue-ca")?;
        leaf(
            dir,
            "ca",
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        let client_ext = "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
        leaf(dir, "ca", "client", "aksnet-agent", client_ext)?;
        leaf(dir, "rogue-ca", "rogue", "intruder", client_ext)?;
        let p = |n: &str| dir.join(n);
        Ok(TestPki {
            dir: dir.to_path_buf(),
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            rogue_cert: p("rogue.pem"),
            rogue_key: p("rogue.key"),
        })
    }

    /// The CA and the client certificate: what an agent is given.
    pub fn client_tls(&self) -> EtcdTls {
        EtcdTls {
            ca: Some(self.ca.clone()),
            cert: Some(self.client_cert.clone()),
            key: Some(self.client_key.clone()),
        }
    }

    /// The CA only: a client without a certificate.
    pub fn ca_only(&self) -> EtcdTls {
        EtcdTls {
            ca: Some(self.ca.clone()),
            ..EtcdTls::default()
        }
    }

    /// The CA and a certificate another CA signed.
    pub fn rogue_tls(&self) -> EtcdTls {
        EtcdTls {
            ca: Some(self.ca.clone()),
            cert: Some(self.rogue_cert.clone()),
            key: Some(self.rogue_key.clone()),
        }
    }
}
