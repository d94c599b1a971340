//! `aksnet completions SHELL` and `aksnet man DIR`: shell completion and man
//! pages generated from the CLI definition itself (clap_complete,
//! clap_mangen), so they never drift from the flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = crate::cli_command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "aksnet", out);
}

pub fn run_completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    // clap_complete panics on a write error: generate, then write.
    let mut script = Vec::new();
    completions(args.shell, &mut script);
    crate::stdout::write_bytes(&script);
    Ok(ExitCode::SUCCESS)
}

/// Writes `aksnet.1` and one page per subcommand, nested ones included
/// (`aksnet-lab-up.1`); returns the files written.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = crate::cli_command();
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_page(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    // A built command's subcommands are displayed as `aksnet-lab-up`: the
    // page's title and file name, as man(1) looks it up.
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_page(sub, dir, written)?;
    }
    Ok(())
}

pub fn run_man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    for p in write_man_pages(&args.dir)? {
        outln!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        completions(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_know_the_subcommands_and_their_flags() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("complete -F _aksnet"), "bash");
        for word in [
            "install",
            "uninstall",
            "status",
            "--metrics-addr",
            "--purge",
            "--cni-conf-dir",
        ] {
            assert!(bash.contains(word), "bash lacks {word}");
        }
        let zsh = script(Shell::Zsh);
        assert!(zsh.starts_with("#compdef aksnet"));
        assert!(zsh.contains("--node-ip"));
        let fish = script(Shell::Fish);
        assert!(fish.contains("complete -c aksnet"));
        assert!(fish.contains("-l log-format"));
    }

    #[test]
    fn a_man_page_per_command_with_its_flags() {
        let d = tempfile::tempdir().unwrap();
        let pages = write_man_pages(d.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for n in [
            "aksnet.1",
            "aksnet-agent.1",
            "aksnet-install.1",
            "aksnet-lab-up.1",
        ] {
            assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
        }
        let agent = std::fs::read_to_string(d.path().join("aksnet-agent.1")).unwrap();
        assert!(
            agent.starts_with(".ie") || agent.contains(".TH aksnet-agent 1"),
            "{agent}"
        );
        assert!(agent.contains("metrics\\-addr"), "{agent}");
        assert!(agent.contains("127.0.0.1:9965"));
    }
}
