//! A bounded fuzz run of every target on stable, in `cargo test`: the kept
//! corpus (`fuzz/corpus/TARGET/`) and the crashes found so far
//! (`fuzz/regressions/TARGET/`) replayed, then mutations of them
//! (`AKSNET_FUZZ_ITERS` per target, 3,000 by default, a tenth of it for
//! the IPAM directory). The long,
//! coverage-guided runs are libFuzzer's (`scripts/fuzz.sh`).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};

use aksnet_fuzz::TARGETS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\x01",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"-1",
    b"0",
    b"4294967296",
    b"1e999",
    b"null",
    b"true",
    b"\"\"",
    b"/",
    b"..",
    b"../",
    b"\r\n",
    b"::",
    b"/24",
    b"/33",
    b"255.255.255.255",
    b"0.0.0.0/0",
    b"\xff\xfe",
    b"'",
    b"- ",
    b"&a",
    b"*a",
    b"!!",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let end = (at + rng.below(16)).min(d.len());
                d.drain(at.min(end)..end);
            }
            2 => {
                let w = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(at..at, w.iter().copied());
            }
            3 => {
                // A piece of another seed (crossover).
                let o = &seeds[rng.below(seeds.len())];
                let s = rng.below(o.len() + 1);
                let e = (s + rng.below(64)).min(o.len());
                d.splice(at..at, o[s..e].iter().copied());
            }
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            _ => d.truncate(at),
        }
    }
    d
}

#[test]
fn every_target_has_a_corpus_and_a_libfuzzer_binary() {
    for (name, _) in TARGETS {
        assert!(
            !files(&root().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name}/ is empty"
        );
        let bin = root().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
}

#[test]
fn corpus_and_regressions_replay_and_mutations_hold() {
    let iters: usize = std::env::var("AKSNET_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for (name, body) in TARGETS {
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for sub in ["corpus", "regressions"] {
            for (path, data) in files(&root().join(sub).join(name)) {
                let r = std::panic::catch_unwind(|| body(&data));
                assert!(r.is_ok(), "{name}: {} fails", path.display());
                seeds.push(data);
            }
        }
        seeds.push(Vec::new());
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ name.len() as u64);
        // The IPAM target makes a directory and takes a lock per input.
        let n = if *name == "ipam_store" {
            iters / 10
        } else {
            iters
        };
        let started = std::time::Instant::now();
        for i in 0..n {
            let d = mutate(&mut rng, &seeds);
            if std::panic::catch_unwind(|| body(&d)).is_err() {
                panic!(
                    "{name}: mutation {i} fails; keep it as fuzz/regressions/{name}/<name>: {:?}",
                    String::from_utf8_lossy(&d)
                );
            }
        }
        eprintln!("{name}: {n} mutations in {:?}", started.elapsed());
    }
}
