//! `peerstorm serve broker` as a process: it prints where it listens, serves, tells clients
//! beyond its file-descriptor limit why they cannot connect (503) while everyone else keeps
//! working, and stops cleanly on SIGTERM.

use peerstorm_loadgen::{Client, JoinError, Target};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn out_of_descriptors_gets_a_clear_answer_and_sigterm_stops_cleanly() {
    // A hard limit of 64 open files: about 50 clients fit.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n 64 && exec {} serve broker --host 127.0.0.1 --port 0", env!("CARGO_BIN_EXE_peerstorm")))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.starts_with("peerstorm broker listening on 127.0.0.1:"), "{banner}");
    let addr = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').parse().unwrap();
    let settings = lines.next().unwrap().unwrap();
    assert!(settings.contains("open-files limit 64"), "{settings}");
    let target = Target::new(addr, "/peerjs", "peerjs");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        for i in 0..80 {
            match Client::join(&target, &format!("p{i}"), "t", None, Duration::from_secs(5)).await {
                Ok((c, _)) => ok.push(c),
                Err(JoinError::Http(line)) => refused.push(line),
                Err(e) => panic!("client {i}: {e}"),
            }
        }
        assert!(ok.len() >= 40, "only {} clients fit", ok.len());
        assert!(!refused.is_empty(), "nobody was refused at 64 descriptors");
        assert!(refused.iter().all(|l| l.starts_with("HTTP/1.1 503")), "{refused:?}");
        // Everyone who got in is still served.
        let (a, b) = ok.split_at_mut(1);
        let frame = peerstorm_loadgen::client::text_frame(&peerstorm_loadgen::offer_frame(&b[0].id));
        a[0].send(&frame).await.unwrap();
        let mut got = false;
        tokio::time::timeout(Duration::from_secs(5), async {
            while !got {
                b[0].read_frames(|op, p| got |= op == 1 && String::from_utf8_lossy(p).contains("OFFER")).await.unwrap();
            }
        })
        .await
        .expect("the relay works at the limit");
    });
    // SIGTERM: a clean stop.
    let pid = child.id() as i32;
    assert_eq!(unsafe_free_kill(pid), 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// `kill -TERM pid` through the shell, to keep `unsafe` out of the tests.
fn unsafe_free_kill(pid: i32) -> i32 {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().code().unwrap_or(-1)
}
