//! `peerstorm lab`: housekeeping for the lab (real programs in network namespaces behind the
//! simulated network; `crates/lab`).

use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Lab {
    /// Remove what a killed lab run left behind: its network namespaces (named `psl-<pid>-…`,
    /// whose process is gone) and every program still running in them. A running lab's
    /// namespaces are left alone; nothing outside the lab is touched.
    Clean,
}

pub fn run(cmd: Lab) -> Result<u8> {
    match cmd {
        Lab::Clean => match peerstorm_lab::ns::clean() {
            Ok(removed) if removed.is_empty() => {
                println!("nothing to clean: no lab namespace without its lab");
                Ok(EXIT_OK)
            }
            Ok(removed) => {
                println!("removed {} lab namespace(s): {}", removed.len(), removed.join(", "));
                Ok(EXIT_OK)
            }
            Err(e) => {
                eprintln!("peerstorm: {e}");
                Ok(EXIT_HARNESS)
            }
        },
    }
}
