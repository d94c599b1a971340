//! `lab down` on a lab that crashed before writing any state: it finds the
//! lab's namespaces by name and the processes running inside them, removes
//! exactly those, and leaves a lab whose name merely starts the same alone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::process::Command;
use std::time::Duration;

use aksnet_lab::state::LabDir;
use aksnet_lab::topology::{netns_path, Names};
use aksnet_lab::{ip, netns, process, teardown};

fn root_or_skip() -> bool {
    aksnet_linux::testing::can_run("the teardown test", &["ip"])
}

#[test]
fn down_cleans_a_crashed_lab_and_nothing_else() {
    if !root_or_skip() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("ak5-td-{}", std::process::id()));
    std::env::set_var("AKSNET_LAB_ROOT", &tmp);
    let name = format!("ak5-td{}", std::process::id() % 100_000);
    let other = format!("{name}-node-1");
    let names = Names::new(&name);
    let others = Names::new(&other);
    let ours = [names.fabric(), names.node(1), names.pod(1, 1), names.vm()];
    let theirs = [others.fabric(), others.node(2)];
    let lines: Vec<String> = ours
        .iter()
        .chain(theirs.iter())
        .map(|n| format!("netns add {n}"))
        .collect();
    ip::netns_batch(&lines).unwrap();
    // A process left inside a pod, one inside the other lab.
    let spawn_in = |ns: &str| {
        let mut c = Command::new("sleep");
        c.arg("300");
        netns::command_in(&mut c, &netns_path(ns)).unwrap();
        c.spawn().unwrap()
    };
    let mut stray = spawn_in(&names.pod(1, 1));
    let mut bystander = spawn_in(&others.node(2));
    let dir = LabDir::new(&name).unwrap();
    assert!(!dir.exists());
    let report = teardown::down(&dir).unwrap();
    let _ = stray.try_wait();
    let left: Vec<String> = ip::netns_list();
    let bystander_alive = process::alive(bystander.id());
    let _ = bystander.kill();
    let _ = bystander.wait();
    let _ = ip::netns_batch(
        &theirs
            .iter()
            .map(|n| format!("netns del {n}"))
            .collect::<Vec<_>>(),
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(report.left.is_empty(), "{:?}", report.left);
    for n in &ours {
        assert!(!left.contains(n), "{n} left");
        assert!(report.namespaces_removed.contains(n));
    }
    for n in &theirs {
        assert!(left.contains(n), "{n} of another lab was removed");
    }
    assert!(report.processes_stopped.contains(&stray.id()));
    std::thread::sleep(Duration::from_millis(50));
    // Reaped by `down` (this test is its parent) or exited: either way gone.
    assert!(!process::alive(stray.id()), "the stray process still runs");
    assert!(bystander_alive, "a process of another lab was stopped");
    // Running it again is harmless, and says there is no such lab (a name
    // that matches nothing is a typo, not a teardown).
    match teardown::down(&dir) {
        Err(aksnet_lab::LabError::NoLab(n, _)) => assert_eq!(n, name),
        other => panic!("second down: {other:?}"),
    }
}
