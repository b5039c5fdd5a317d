//! Building remote shell command lines from plain arguments. Every word that reaches a remote
//! shell goes through [`quote`]: a run name, a path or a dataset name is data, never code, even
//! when it holds `'`, `;`, `$()`, spaces or newlines.

/// One argument as a POSIX shell word that stands for exactly these bytes.
///
/// Plain words (letters, digits and `-_./=:,+@%`) stay as they are, for readable scripts; anything
/// else goes in single quotes, where the shell interprets nothing, and each `'` becomes `'\''`.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        return word.to_string();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// A path on the remote machine as a shell word: a leading `~/` becomes `"$HOME"/` (a quoted
/// tilde would not be expanded), the rest is quoted as [`quote`] does.
pub fn quote_path(path: &str) -> String {
    if path == "~" {
        return "\"$HOME\"".to_string();
    }
    match path.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", quote(rest)),
        None => quote(path),
    }
}

/// A command line from a program and its arguments, each quoted.
pub fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Joins remote path parts with `/` (remote machines are Unix-like).
pub fn join(base: &str, part: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{part}")
    } else {
        format!("{base}/{part}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh -c 'printf %s WORD'` prints for a quoted word: the original bytes, nothing run.
    fn through_shell(word: &str) -> String {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(word)))
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn hostile_words_reach_the_program_unchanged() {
        for word in [
            "plain",
            "it's",
            "a b  c",
            "x; touch /tmp/kiln-quote-pwned",
            "$(touch /tmp/kiln-quote-pwned)",
            "`touch /tmp/kiln-quote-pwned`",
            "line\nbreak",
            "'",
            "''",
            "\\'",
            "$HOME",
            "*",
            "",
            "-n",
            "tab\there",
            "ünïcødé ✓",
        ] {
            assert_eq!(through_shell(word), word, "quoted as {}", quote(word));
        }
        assert!(!std::path::Path::new("/tmp/kiln-quote-pwned").exists());
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(quote("--runs-dir"), "--runs-dir");
        assert_eq!(quote("/a/b-c_d.json"), "/a/b-c_d.json");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn home_paths_expand_and_the_rest_stays_quoted() {
        assert_eq!(quote_path("~/kiln runs"), "\"$HOME\"/'kiln runs'");
        assert_eq!(quote_path("/abs/path"), "/abs/path");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote_path("~/a;b")))
            .env("HOME", "/home/x")
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "/home/x/a;b");
    }

    #[test]
    fn command_lines_quote_every_word() {
        assert_eq!(
            command_line(&["kiln", "resume", "a b"]),
            "kiln resume 'a b'"
        );
    }
}
