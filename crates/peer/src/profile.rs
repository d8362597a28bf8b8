//! Stack profiles: whose timers a virtual peer keeps. The `rtc` stack's defaults describe
//! webrtc-rs, not the browsers users have (`../shared/research/browser-timing.md`: a DataConnection
//! opens 2.5–16× slower than Chromium's). A [`Profile`] names a browser; its [`StackTimers`] are
//! every timer and behaviour the profile sets, each with the browser source it comes from.
//!
//! What the `rtc` crate's public `SettingEngineBuilder` can set is set here (check pacing, the
//! acceptance waits). What it cannot (nomination on the first check, no HelloVerifyRequest, the
//! channel's `open` on the browser's event, keeping an early ClientHello) is not yet changed:
//! `chrome` is the browser's pacing on the `rtc` stack's handshakes.

use std::time::Duration;

/// Whose timers a virtual peer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Chromium's libwebrtc.
    #[default]
    Chrome,
    /// Firefox (nICEr): checks paced every 20 ms.
    Firefox,
    /// The `rtc` stack's own defaults (webrtc-rs 0.21.1): what peerstorm measured before
    /// profiles existed, kept so old baselines stay reproducible and stacks can be compared.
    Rtc,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Chrome, Profile::Firefox, Profile::Rtc];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Chrome => "chrome",
            Profile::Firefox => "firefox",
            Profile::Rtc => "rtc",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Every timer the profile sets.
    pub fn timers(self) -> StackTimers {
        match self {
            Profile::Chrome => StackTimers {
                // libwebrtc p2p/base/p2p_constants.cc: WEAK_PING_INTERVAL = 48 ms, the pace of
                // checks while no pair is writable (the 50 ms minimum check interval of
                // `kMinimumStepDelay` is within a tick of it).
                check_interval: Duration::from_millis(48),
                // A pair is unwritable after CONNECTION_WRITE_CONNECT_TIMEOUT = 5 s and
                // CONNECTION_WRITE_CONNECT_FAILURES = 5 missed pings (connection.cc): about
                // 5 s of checks at 48 ms.
                max_binding_requests: 104,
                // libwebrtc accepts any pair the moment its check succeeds: no waits by type.
                host_wait: Duration::ZERO,
                srflx_wait: Duration::ZERO,
                prflx_wait: Duration::ZERO,
                relay_wait: Duration::ZERO,
            },
            Profile::Firefox => StackTimers {
                // nICEr: Ta = 20 ms between checks (RFC 8445 §14.2's default pacing).
                check_interval: Duration::from_millis(20),
                // RFC 8445's Rc = 7 retransmissions with RTO doubling reach ~39.5 s; nICEr gives
                // a pair up after its STUN transaction times out (~5 s in practice): 250 × 20 ms.
                max_binding_requests: 250,
                host_wait: Duration::ZERO,
                srflx_wait: Duration::ZERO,
                prflx_wait: Duration::ZERO,
                relay_wait: Duration::ZERO,
            },
            Profile::Rtc => StackTimers {
                // rtc-ice 0.21.1 `agent_config.rs` defaults.
                check_interval: Duration::from_millis(200),
                max_binding_requests: 7,
                host_wait: Duration::ZERO,
                srflx_wait: Duration::from_millis(500),
                prflx_wait: Duration::from_millis(1000),
                relay_wait: Duration::from_millis(2000),
            },
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timers and behaviours a profile sets on the `rtc` stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTimers {
    /// Between connectivity-check rounds while no pair is selected (the ICE agent's tick).
    pub check_interval: Duration,
    /// Checks a pair gets before it is given up.
    pub max_binding_requests: u16,
    /// How long after the agent starts a succeeded pair of each type may be selected.
    pub host_wait: Duration,
    pub srflx_wait: Duration,
    pub prflx_wait: Duration,
    pub relay_wait: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_rtc_keeps_the_stacks_defaults() {
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
        assert_eq!(Profile::default(), Profile::Chrome);
        let rtc = Profile::Rtc.timers();
        assert_eq!((rtc.check_interval, rtc.max_binding_requests), (Duration::from_millis(200), 7));
        let chrome = Profile::Chrome.timers();
        // A pair is tried about as long as Chromium tries it before calling it failed.
        let tried = chrome.check_interval * u32::from(chrome.max_binding_requests);
        assert!((Duration::from_secs(4)..=Duration::from_secs(6)).contains(&tried), "{tried:?}");
    }
}
