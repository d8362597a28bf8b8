//! Progress on stderr: a bar on a terminal, otherwise (or with CI=true) a plain line every five
//! seconds once a run has taken three; nothing with `--quiet`.

use std::io::IsTerminal as _;
use std::time::Instant;

pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    wall: Instant,
    last: Instant,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var("CI").map_or(true, |v| v != "true");
        let bar = (!quiet && tty).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} peers done  {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b
        });
        Self { bar, quiet, wall: Instant::now(), last: Instant::now() }
    }

    /// Wall time since the display was made.
    pub(crate) fn wall_secs(&self) -> f64 {
        self.wall.elapsed().as_secs_f64()
    }

    /// A simulation's progress.
    pub(crate) fn simulation(&mut self, p: &peerstorm_runner::Progress) {
        let msg = format!(
            "started {}, failed {}, virtual {:.0} s, wall {:.0} s",
            p.peers_started,
            p.peers_failed,
            p.virtual_time.as_secs_f64(),
            self.wall_secs()
        );
        let prefix = match p.run {
            (_, 1) => format!("{} ICE", peerstorm_scenario::ice_name(p.ice)),
            (i, n) => format!("run {i}/{n}, {} ICE", peerstorm_scenario::ice_name(p.ice)),
        };
        self.show(&prefix, p.peers_done as u64, p.peers as u64, &msg);
    }

    /// A live run's event: notes are printed, ticks shown.
    pub(crate) fn live(&mut self, e: peerstorm_live::run::Event) {
        use peerstorm_live::run::Event;
        match e {
            Event::Note(line) => eprintln!("{line}"),
            Event::Tick { label, done, total, message } => self.show(&label, done, total, &message),
            Event::Finished => {
                // The next run gets a display of its own.
                self.finish();
                *self = Progress::new(self.quiet);
            }
        }
    }

    /// One progress report: `pos` of `len` done, and a message.
    pub(crate) fn show(&mut self, prefix: &str, pos: u64, len: u64, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_length(len);
            b.set_position(pos);
            b.set_prefix(prefix.to_string());
            b.set_message(msg.to_string());
        } else if !self.quiet && self.wall.elapsed().as_secs() >= 3 && self.last.elapsed().as_secs() >= 5 {
            self.last = Instant::now();
            eprintln!("  {prefix}: {pos} of {len} done; {msg}");
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
