//! A section of README.md as the test walks it: the `sh` blocks between
//! two HTML comment markers, cut into shell commands, and the steps an
//! admin's shell runs, with the lines the test stands in for set apart.

use std::path::Path;

/// One shell command as written: a line, the lines its trailing `\`
/// continues onto, and the body of its here-document.
#[derive(Debug, Clone)]
pub struct Command {
    pub text: String,
}

impl Command {
    /// The command without a trailing `# comment` on its first line, the
    /// words a stand-in is matched against.
    pub fn words(&self) -> &str {
        let first = self.text.lines().next().unwrap_or_default();
        let mut quote = None;
        let mut previous = ' ';
        for (at, c) in first.char_indices() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(open), _) if c == open => quote = None,
                (None, '#') if previous.is_whitespace() => return first[..at].trim(),
                _ => {}
            }
            previous = c;
        }
        first.trim()
    }
}

/// The `sh` blocks of a section, each a list of commands.
pub struct Section {
    pub blocks: Vec<Vec<Command>>,
}

/// What the walk does next: run a script in the admin's shell, or the
/// test's stand-in for a command (the command as written in the README,
/// and with the substitutions).
#[derive(Debug)]
pub enum Step {
    Shell(String),
    StandIn {
        written: String,
        substituted: String,
    },
}

impl Section {
    /// The section of `readme` between the line that starts with `begin`
    /// and the line `end`; every fenced block in it must be an `sh` block,
    /// so that nothing shown goes unwalked.
    pub fn between(readme: &Path, begin: &str, end: &str) -> Section {
        let text = std::fs::read_to_string(readme).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let find = |marker: &str, full: bool| {
            let found: Vec<usize> = (0..lines.len())
                .filter(|&i| {
                    if full {
                        lines[i] == marker
                    } else {
                        lines[i].starts_with(marker)
                    }
                })
                .collect();
            assert_eq!(
                found.len(),
                1,
                "one line {marker:?} in {}: {found:?}",
                readme.display()
            );
            found[0]
        };
        let (first, last) = (find(begin, false), find(end, true));
        assert!(first < last, "{begin:?} comes before {end:?}");
        let mut blocks = Vec::new();
        let mut block: Option<Vec<&str>> = None;
        for line in &lines[first + 1..last] {
            match (&mut block, line.trim_end()) {
                (None, "```sh") => block = Some(Vec::new()),
                (None, fence) if fence.starts_with("```") => {
                    panic!("a {fence:?} block in the walked section: only sh blocks are run")
                }
                (None, _) => {}
                (Some(body), "```") => {
                    blocks.push(commands(body));
                    block = None;
                }
                (Some(body), _) => body.push(line),
            }
        }
        assert!(block.is_none(), "an sh block is not closed");
        assert!(!blocks.is_empty(), "no sh block in the section");
        Section { blocks }
    }

    /// The steps of the walk: each block's commands in the admin's shell,
    /// one script for the commands between two stand-ins (so a block's
    /// variables last across them), with every substitution made. Each
    /// stand-in (a command's words) must match exactly one command and each
    /// substitution must occur, so that a section that changed fails here
    /// rather than run what the test no longer means.
    pub fn steps(&self, stand_ins: &[&str], substitutions: &[(&str, String)]) -> Vec<Step> {
        let all: Vec<&Command> = self.blocks.iter().flatten().collect();
        for stand_in in stand_ins {
            let matches = all.iter().filter(|c| c.words() == *stand_in).count();
            assert_eq!(
                matches, 1,
                "the stand-in for `{stand_in}` matches {matches} commands of the section"
            );
        }
        for (from, _) in substitutions {
            assert!(
                all.iter().any(|c| c.text.contains(from)),
                "{from:?} is substituted but the section has no such text"
            );
        }
        let substitute = |text: &str| {
            substitutions
                .iter()
                .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
        };
        let mut steps = Vec::new();
        for block in &self.blocks {
            let mut script: Vec<&str> = Vec::new();
            for command in block {
                if stand_ins.contains(&command.words()) {
                    if !script.is_empty() {
                        steps.push(Step::Shell(substitute(&script.join("\n"))));
                        script.clear();
                    }
                    steps.push(Step::StandIn {
                        written: command.words().to_string(),
                        substituted: substitute(&command.text),
                    });
                } else {
                    script.push(&command.text);
                }
            }
            if !script.is_empty() {
                steps.push(Step::Shell(substitute(&script.join("\n"))));
            }
        }
        steps
    }
}

/// Cuts a block into commands: blank and comment lines dropped, a line
/// ending in `\` joined with the next, a here-document kept with its
/// command up to its delimiter.
fn commands(lines: &[&str]) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut rest = lines.iter();
    while let Some(line) = rest.next() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut text = line.to_string();
        while text.ends_with('\\') {
            let next = rest.next().expect("a continued line is continued");
            text.push('\n');
            text.push_str(next);
        }
        if let Some(delimiter) = here_document(&text) {
            loop {
                let next = rest
                    .next()
                    .unwrap_or_else(|| panic!("the here-document {delimiter} ends"));
                text.push('\n');
                text.push_str(next);
                if *next == delimiter {
                    break;
                }
            }
        }
        commands.push(Command { text });
    }
    commands
}

/// The delimiter of a here-document the command opens (`<<'EOF'`,
/// `<<EOF`).
fn here_document(text: &str) -> Option<String> {
    let after = &text[text.find("<<")? + 2..];
    let word: String = after
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_keep_continuations_and_here_documents_together() {
        let lines = [
            "# a comment",
            "make \\",
            "    all   # built",
            "cat >f <<'EOF'",
            "a # not a comment",
            "EOF",
            "",
            "echo 'x # y' # done",
        ];
        let cut = commands(&lines);
        let texts: Vec<&str> = cut.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "make \\\n    all   # built",
                "cat >f <<'EOF'\na # not a comment\nEOF",
                "echo 'x # y' # done"
            ]
        );
        let words: Vec<&str> = cut.iter().map(Command::words).collect();
        assert_eq!(words, ["make \\", "cat >f <<'EOF'", "echo 'x # y'"]);
    }
}
