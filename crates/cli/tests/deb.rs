//! Issue 9 §5: the `.deb` that `scripts/build-deb.sh` builds holds the
//! binaries (byte for byte this build's), the packaged unit, a man page per
//! command and the shell completions, with a control file dpkg accepts.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::*;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_holds_the_binaries_unit_man_pages_and_completions() {
    if !can_run("the .deb build", &["dpkg-deb", "dpkg", "gzip"], true) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = cni_bin_dir();
    // The package takes aksnet from the plugins' directory: both must be
    // this build's.
    assert_eq!(
        std::fs::read(bin.join("aksnet")).ok(),
        std::fs::read(aksnet()).ok(),
        "{} is not the aksnet under test",
        bin.join("aksnet").display()
    );
    let out = tempfile::tempdir().unwrap();
    let deb = sh(Command::new("bash")
        .arg(repo.join("scripts/build-deb.sh"))
        .arg(out.path())
        .env("AKSNET_BIN_DIR", &bin)
        // An unstripped debug build is ~300 MB: xz would take minutes.
        .env("AKSNET_DEB_COMPRESSION", "gzip")
        .env("AKSNET_DEB_LEVEL", "1"));
    let deb = Path::new(deb.trim());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("aksnet_{version}_")),
        "{}",
        deb.display()
    );

    let field = |f: &str| sh(Command::new("dpkg-deb").arg("-f").arg(deb).arg(f));
    assert_eq!(field("Package").trim(), "aksnet");
    assert_eq!(field("Version").trim(), version);
    assert_eq!(
        field("Architecture").trim(),
        sh(Command::new("dpkg").arg("--print-architecture")).trim()
    );
    assert!(field("Depends").contains("nftables"));

    // Every file and its owner/mode, as `dpkg-deb -c` lists them.
    let listing = sh(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "root/root", "{line}");
        let path = cols[5].trim_start_matches('.');
        if !cols[0].starts_with('d') {
            files.insert((path.to_string(), cols[0].to_string()));
        }
    }
    let exe = "-rwxr-xr-x".to_string();
    let doc = "-rw-r--r--".to_string();
    for (p, mode) in [
        ("/usr/bin/aksnet", &exe),
        ("/usr/lib/aksnet/cni/aksnet-cni", &exe),
        ("/usr/lib/aksnet/cni/aksnet-ipam", &exe),
        ("/usr/lib/aksnet/cni/aksnet-portmap", &exe),
        ("/usr/lib/systemd/system/aksnet-agent.service", &doc),
        ("/usr/share/man/man1/aksnet.1.gz", &doc),
        ("/usr/share/man/man1/aksnet-agent.1.gz", &doc),
        ("/usr/share/man/man1/aksnet-install.1.gz", &doc),
        ("/usr/share/man/man1/aksnet-uninstall.1.gz", &doc),
        ("/usr/share/man/man1/aksnet-lab-up.1.gz", &doc),
        ("/usr/share/bash-completion/completions/aksnet", &doc),
        ("/usr/share/zsh/vendor-completions/_aksnet", &doc),
        ("/usr/share/fish/vendor_completions.d/aksnet.fish", &doc),
        ("/usr/share/doc/aksnet/copyright", &doc),
    ] {
        assert!(
            files.contains(&(p.to_string(), mode.clone())),
            "{p} ({mode}) not in the package:\n{listing}"
        );
    }
    // Nothing outside /usr (a package owns no /etc file it did not declare).
    assert!(
        files.iter().all(|(p, _)| p.starts_with("/usr/")),
        "{listing}"
    );

    // Unpacked: the binaries are this build's, the unit runs the packaged
    // aksnet, the pages and completions are what the CLI generates.
    let x = tempfile::tempdir().unwrap();
    sh(Command::new("dpkg-deb").arg("-x").arg(deb).arg(x.path()));
    for (inside, built) in [
        ("usr/bin/aksnet", bin.join("aksnet")),
        ("usr/lib/aksnet/cni/aksnet-ipam", bin.join("aksnet-ipam")),
    ] {
        assert!(
            std::fs::read(x.path().join(inside)).unwrap() == std::fs::read(&built).unwrap(),
            "{inside} differs from {}",
            built.display()
        );
    }
    let unit =
        std::fs::read_to_string(x.path().join("usr/lib/systemd/system/aksnet-agent.service"))
            .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/aksnet agent $AKSNET_AGENT_ARGS"),
        "{unit}"
    );
    let page = sh(Command::new("gzip")
        .arg("-dc")
        .arg(x.path().join("usr/share/man/man1/aksnet-install.1.gz")));
    assert!(page.contains(".TH aksnet-install 1"), "{page}");
    assert!(page.contains("cni\\-bin\\-dir"), "{page}");
    let bash = std::fs::read_to_string(
        x.path()
            .join("usr/share/bash-completion/completions/aksnet"),
    )
    .unwrap();
    let fresh = sh(Command::new(aksnet()).args(["completions", "bash"]));
    assert_eq!(bash, fresh);
    // The packaged aksnet finds the packaged plugins for `aksnet install`.
    let root = tempfile::tempdir().unwrap();
    let out = sh(Command::new(x.path().join("usr/bin/aksnet")).args([
        "install",
        "--root",
        root.path().to_str().unwrap(),
        "--store",
        "sqlite:/var/lib/aksnet/cluster.db",
        "--node",
        "n1",
        "--node-ip",
        "10.224.0.4",
    ]));
    assert!(out.contains("installed"), "{out}");
    assert_eq!(
        std::fs::read(root.path().join("opt/cni/bin/aksnet-portmap")).unwrap(),
        std::fs::read(bin.join("aksnet-portmap")).unwrap()
    );
}
