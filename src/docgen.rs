//! Shell completions and man pages, generated from the clap definition of [`crate::cli`] by the
//! binary itself (`medallion completions <shell>`, `medallion man --out DIR`), so they always
//! match the options of the build that writes them, and no build script reruns on every change.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use serde::Serialize;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::output::Report;

/// The completion script of `shell` for the `medallion` command.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "medallion", &mut script);
    script
}

/// Print the completion script on stdout (a closed pipe ends the command quietly).
pub fn print_completions(shell: Shell) -> Result<()> {
    crate::output::stdout(&completions(shell));
    Ok(())
}

/// The man pages `man` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ManReport {
    pub dir: PathBuf,
    pub pages: Vec<String>,
}

impl Report for ManReport {
    fn summary(&self) -> String {
        format!(
            "man: {} pages in {} ({})",
            self.pages.len(),
            self.dir.display(),
            self.pages.join(", ")
        )
    }
}

/// Write `medallion.1` and one page per (visible) command, `medallion-<command>.1`, into `dir`.
pub fn man_pages(dir: &Path) -> Result<ManReport> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Gives each command its display name (`medallion-silver`) and the global flags.
    cli.build();
    let commands: Vec<clap::Command> = std::iter::once(cli.clone())
        .chain(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
        .collect();
    let mut pages = Vec::new();
    for command in commands {
        let examples = command.get_after_help().map(|text| text.to_string());
        // Every page's footer names the program and its version (a command's own would be
        // `silver `: commands have no version).
        let man = clap_mangen::Man::new(command)
            .source(format!("medallion {}", env!("CARGO_PKG_VERSION")));
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(Error::io("render the man page", &path))?;
        let page = String::from_utf8_lossy(&page);
        let page = match examples {
            Some(text) => with_examples(&page, &text),
            None => page.into_owned(),
        };
        crate::atomic::write_atomically(&path, page.as_bytes())?;
        pages.push(man.get_filename());
    }
    Ok(ManReport {
        dir: dir.to_path_buf(),
        pages,
    })
}

/// The page with its `EXTRA` section (the command's `after_help`, which clap_mangen fills as a
/// paragraph, so the examples' columns run together) replaced by `EXAMPLES`, printed as written.
fn with_examples(page: &str, after_help: &str) -> String {
    let Some(start) = page.find(".SH EXTRA\n") else {
        return page.to_string();
    };
    let end = page[start + 1..]
        .find("\n.SH ")
        .map_or(page.len(), |at| start + 1 + at + 1);
    let mut section = String::from(".SH EXAMPLES\n.nf\n");
    for line in after_help.lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        // A line starting with `.` or `'` would be a roff request.
        if line.starts_with(['.', '\'']) {
            section.push_str("\\&");
        }
        section.push_str(&line);
        section.push('\n');
    }
    section.push_str(".fi\n");
    format!("{}{section}{}", &page[..start], &page[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::PowerShell,
            Shell::Elvish,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for command in ["pipeline", "history", "completions"] {
                assert!(script.contains(command), "{shell}: {command}");
            }
        }
    }

    #[test]
    fn examples_replace_the_filled_extra_section() {
        let page = ".TH x 1\n.SH EXTRA\nExamples: a b\n.SH VERSION\nv1\n";
        assert_eq!(
            with_examples(page, "Examples:\n  x --all   every\n.hidden \\n"),
            ".TH x 1\n.SH EXAMPLES\n.nf\nExamples:\n  x \\-\\-all   every\n\\&.hidden \\en\n.fi\n\
             .SH VERSION\nv1\n"
        );
        let last = ".TH x 1\n.SH EXTRA\nExamples: a\n";
        assert_eq!(
            with_examples(last, "e"),
            ".TH x 1\n.SH EXAMPLES\n.nf\ne\n.fi\n"
        );
    }
}
