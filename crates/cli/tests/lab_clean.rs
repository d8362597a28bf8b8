//! `peerstorm lab clean`: what a killed lab run left behind is removed, nothing else.

/// A lab run that was killed leaves its namespace and a program in it; `lab clean` removes
/// both and leaves a live lab's namespaces (here: none) alone.
#[test]
fn lab_clean_removes_what_a_killed_lab_left() {
    // A namespace as a lab names them, owned by a process that no longer exists.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let _ = { dead }.wait();
    let name = format!("psl-{pid}-orphan");
    assert!(std::process::Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
    let mut sleeper = std::process::Command::new("ip").args(["netns", "exec", &name, "sleep", "600"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(["lab", "clean"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(&name), "{out}");
    assert!(!sleeper.wait().unwrap().success(), "the program in it was stopped");
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
}
