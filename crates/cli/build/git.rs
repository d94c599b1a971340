//! The commit a checkout is at, read from the files under `.git` (HEAD, the
//! branch's loose ref, `packed-refs`) without running `git`: a build
//! machine with only Debian and Rust has no `git` binary. Shared by the
//! build script (which stamps the version) and the CLI's unit tests.

use std::path::{Path, PathBuf};

/// Where a checkout's git data is: `git_dir` holds `HEAD`; `common_dir`
/// holds the refs (they differ in a `git worktree`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDirs {
    pub git_dir: PathBuf,
    pub common_dir: PathBuf,
}

/// The git directories of the checkout containing `start`: the nearest
/// `.git` directory, or a `.git` file (`gitdir: PATH`, as worktrees and
/// submodules have), walking up from `start`.
pub fn find(start: &Path) -> Option<GitDirs> {
    for dir in start.ancestors() {
        let dot = dir.join(".git");
        if dot.is_dir() {
            return Some(GitDirs {
                git_dir: dot.clone(),
                common_dir: dot,
            });
        }
        if dot.is_file() {
            let text = std::fs::read_to_string(&dot).ok()?;
            let git_dir = dir.join(text.strip_prefix("gitdir:")?.trim());
            let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
                Ok(c) => git_dir.join(c.trim()),
                Err(_) => git_dir.clone(),
            };
            return Some(GitDirs {
                git_dir,
                common_dir,
            });
        }
    }
    None
}

fn is_hash(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What `HEAD` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A commit hash (detached HEAD).
    Detached(String),
    /// A ref such as `refs/heads/main`.
    Ref(String),
}

pub fn head(dirs: &GitDirs) -> Option<Head> {
    let text = std::fs::read_to_string(dirs.git_dir.join("HEAD")).ok()?;
    let text = text.trim();
    if let Some(r) = text.strip_prefix("ref:") {
        return Some(Head::Ref(r.trim().to_string()));
    }
    is_hash(text).then(|| Head::Detached(text.to_lowercase()))
}

/// The loose file of `reference`, if there is one (worktree-private refs
/// live in `git_dir`, shared ones in `common_dir`).
pub fn loose_ref(dirs: &GitDirs, reference: &str) -> Option<PathBuf> {
    [&dirs.git_dir, &dirs.common_dir]
        .into_iter()
        .map(|d| d.join(reference))
        .find(|p| p.is_file())
}

/// The commit `reference` names: its loose file, else its `packed-refs` line.
pub fn resolve(dirs: &GitDirs, reference: &str) -> Option<String> {
    if let Some(p) = loose_ref(dirs, reference) {
        let text = std::fs::read_to_string(p).ok()?;
        let text = text.trim();
        return is_hash(text).then(|| text.to_lowercase());
    }
    let packed = std::fs::read_to_string(dirs.common_dir.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .filter_map(|l| l.split_once(' '))
        .find(|(_, name)| name.trim() == reference)
        .map(|(hash, _)| hash.to_lowercase())
        .filter(|h| is_hash(h))
}

/// The commit the checkout at `start` is at, and the files whose change
/// means it may have moved (for `cargo:rerun-if-changed`; only files that
/// exist, since Cargo reruns a build script on every build while a watched
/// path is missing).
pub fn commit(start: &Path) -> (Option<String>, Vec<PathBuf>) {
    let Some(dirs) = find(start) else {
        return (None, Vec::new());
    };
    let mut watch = vec![dirs.git_dir.join("HEAD")];
    let commit = match head(&dirs) {
        Some(Head::Detached(h)) => Some(h),
        Some(Head::Ref(r)) => {
            match loose_ref(&dirs, &r) {
                Some(p) => watch.push(p),
                // A packed branch gets a loose file on its next commit:
                // watch the directory it will appear in.
                None => {
                    if let Some(parent) = Path::new(&r).parent() {
                        watch.push(dirs.common_dir.join(parent));
                    }
                }
            }
            watch.push(dirs.common_dir.join("packed-refs"));
            resolve(&dirs, &r)
        }
        None => None,
    };
    watch.retain(|p| p.exists());
    (commit, watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba98";

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_loose_branch_ref() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join(".git/HEAD"), "ref: refs/heads/main\n");
        write(&t.path().join(".git/refs/heads/main"), &format!("{A}\n"));
        let sub = t.path().join("crates/cli");
        std::fs::create_dir_all(&sub).unwrap();
        let (c, watch) = commit(&sub);
        assert_eq!(c.as_deref(), Some(A));
        assert!(watch.contains(&t.path().join(".git/refs/heads/main")));
    }

    #[test]
    fn a_packed_branch_ref_as_a_fresh_clone_has() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join(".git/HEAD"), "ref: refs/heads/main\n");
        std::fs::create_dir_all(t.path().join(".git/refs/heads")).unwrap();
        write(
            &t.path().join(".git/packed-refs"),
            &format!(
                "# pack-refs with: peeled fully-peeled sorted\n{B} refs/heads/dev\n{A} refs/heads/main\n^{B}\n"
            ),
        );
        let (c, watch) = commit(t.path());
        assert_eq!(c.as_deref(), Some(A));
        assert!(watch.contains(&t.path().join(".git/refs/heads")));
        assert!(watch.contains(&t.path().join(".git/packed-refs")));
    }

    #[test]
    fn a_worktree_reads_head_from_its_dir_and_refs_from_the_common_dir() {
        let t = tempfile::tempdir().unwrap();
        let main = t.path().join("main/.git");
        write(&main.join("refs/heads/ops"), &format!("{B}\n"));
        write(&main.join("worktrees/ops/HEAD"), "ref: refs/heads/ops\n");
        write(&main.join("worktrees/ops/commondir"), "../..\n");
        let wt = t.path().join("wt/ops");
        write(
            &wt.join(".git"),
            &format!("gitdir: {}\n", main.join("worktrees/ops").display()),
        );
        let (c, _) = commit(&wt);
        assert_eq!(c.as_deref(), Some(B));
    }

    #[test]
    fn a_detached_head() {
        let t = tempfile::tempdir().unwrap();
        write(
            &t.path().join(".git/HEAD"),
            &format!("{}\n", A.to_uppercase()),
        );
        assert_eq!(commit(t.path()).0.as_deref(), Some(A));
    }

    #[test]
    fn no_checkout_or_an_unborn_branch_is_unknown() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(commit(t.path()), (None, Vec::new()));
        write(&t.path().join(".git/HEAD"), "ref: refs/heads/main\n");
        assert_eq!(commit(t.path()).0, None);
        write(&t.path().join(".git/refs/heads/main"), "not a hash\n");
        assert_eq!(commit(t.path()).0, None);
    }
}
