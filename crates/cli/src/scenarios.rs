//! `peerstorm scenarios`: the scenarios shipped in `scenarios/`, each with its mode, size and
//! the first sentence of its header comment.

use crate::run::load_scenario;
use anyhow::{Context, Result};
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ScenariosArgs {
    /// The directory to list (default: `scenarios/` of the checkout this runs in).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// The first sentence of the comment block a scenario file starts with.
pub(crate) fn purpose(text: &str) -> String {
    let header: Vec<&str> =
        text.lines().map_while(|l| l.strip_prefix('#')).map(str::trim).take_while(|l| !l.is_empty()).collect();
    let joined = header.join(" ");
    match joined.find(". ").or_else(|| joined.strip_suffix('.').map(str::len)) {
        Some(end) => format!("{}.", &joined[..end]),
        None => joined,
    }
}

pub fn run(a: &ScenariosArgs) -> Result<u8> {
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => crate::children::repo_root()?.join("scenarios"),
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let width = 80;
    for path in &files {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let head = match load_scenario(path) {
            Ok((s, _)) => format!("{} · {} peers", s.mode.as_str(), s.peers.count),
            Err(e) => format!("does not load: {e}"),
        };
        println!("{name:<16} {head}");
        for line in textwrap(&purpose(&text), width - 17) {
            println!("{:17}{line}", "");
        }
    }
    println!("\nRun one: peerstorm run {}/NAME.toml (--dry-run shows its plan)", dir.display());
    Ok(crate::EXIT_OK)
}

/// Greedy word wrap.
fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purpose_is_the_headers_first_sentence() {
        let text =
            "# Trickle against vanilla ICE, on the same peers, at 20 ms. Vanilla waits.\n# More.\nname = \"x\"\n";
        assert_eq!(purpose(text), "Trickle against vanilla ICE, on the same peers, at 20 ms.");
        assert_eq!(purpose("# One line without a stop\n\nname = \"x\"\n"), "One line without a stop");
        assert_eq!(purpose("name = \"x\"\n"), "");
        assert_eq!(textwrap("aa bb cc", 5), ["aa bb", "cc"]);
    }
}
