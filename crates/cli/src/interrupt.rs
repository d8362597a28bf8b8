//! Ctrl-C and SIGTERM during a run: the first asks the run to stop (it writes a partial report
//! and exits 130 or 143); a second one ends the process at once with the same status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The signals a run stops for, with the status a shell reports for each (128 + number).
const SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// Installed signal flags; dropping it keeps them (a run installs one and then ends).
#[derive(Debug, Clone)]
pub(crate) struct Interrupt {
    any: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Registers SIGINT and SIGTERM: the first sets the flag, a second exits at once.
    pub(crate) fn install() -> std::io::Result<Self> {
        let any = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for sig in SIGNALS {
            // Checked before the flag is set by the registration below: only a second signal exits.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&any))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize)?;
            signal_hook::flag::register(sig, Arc::clone(&any))?;
        }
        Ok(Self { any, which })
    }

    /// The flag a driver polls (set by the first signal).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.any)
    }

    /// Whether a stop was asked for.
    pub(crate) fn requested(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The exit status for the signal received (130 for SIGINT, 143 for SIGTERM), if one was.
    pub(crate) fn status(&self) -> Option<u8> {
        let sig = self.which.load(Ordering::Relaxed);
        (self.requested() && sig > 0).then(|| 128 + sig as u8)
    }

    /// The signal's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        if self.which.load(Ordering::Relaxed) == signal_hook::consts::SIGTERM as usize { "SIGTERM" } else { "Ctrl-C" }
    }
}
