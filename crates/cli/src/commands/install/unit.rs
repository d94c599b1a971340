//! The systemd unit `aksnet install` writes: `aksnet agent` with the
//! node's flags, restarted whenever it stops.

use std::path::Path;

pub const UNIT_NAME: &str = "aksnet-agent.service";
/// Where units an administrator installs live (over `/lib/systemd/system`,
/// where a package's own unit is).
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// Quotes one `ExecStart=` word the way systemd reads it back: specifiers
/// (`%`) and variables (`$`) doubled, and double quotes with C escapes
/// around any word holding a space, a quote or a backslash.
pub fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && !escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if plain {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits an `ExecStart=` value as systemd does for what [`quote`]
/// writes (the tests read a unit back with it).
#[cfg(test)]
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => cur.push('\n'),
                            Some('t') => cur.push('\t'),
                            Some(o) => cur.push(o),
                            None => {}
                        },
                        c => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
        .into_iter()
        .map(|w| w.replace("%%", "%").replace("$$", "$"))
        .collect()
}

/// The unit running `aksnet` at `exe` with `args` (after `agent`).
pub fn render(exe: &Path, args: &[String]) -> String {
    let mut exec = quote(&exe.display().to_string());
    exec.push_str(" agent");
    for a in args {
        exec.push(' ');
        exec.push_str(&quote(a));
    }
    format!(
        "# Written by `aksnet install`; `aksnet uninstall` removes it.\n\
         [Unit]\n\
         Description=aksnet node agent (AKS pod networking)\n\
         Documentation=man:aksnet-agent(1)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         Environment=AKSNET_LOG=info\n\
         ExecStart={exec}\n\
         Restart=always\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The `ExecStart=` words of a unit text.
#[cfg(test)]
pub fn exec_start(unit: &str) -> Option<Vec<String>> {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .map(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_what_systemd_would_mangle() {
        for w in [
            "sqlite:/var/lib/aksnet/cluster.db",
            "etcd://10.0.0.1:2379,10.0.0.2:2379",
            "a path/with space",
            "100%",
            "$HOME",
            "q\"uote",
            "back\\slash",
            "semi;colon",
        ] {
            let line = format!("/usr/bin/aksnet {}", quote(w));
            assert_eq!(
                split(&line),
                vec!["/usr/bin/aksnet".to_string(), w.to_string()],
                "{line}"
            );
        }
        assert_eq!(quote("100%"), "100%%");
        assert_eq!(quote("a b"), "\"a b\"");
    }
}
