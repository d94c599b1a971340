//! Turns the bytes of a design file into JSON documents: the encoding is
//! detected (UTF-8 with or without a byte-order mark, UTF-16 with a BOM or by
//! its NUL bytes, as PowerShell writes it), the size and nesting depth are
//! bounded before any parser runs (a YAML parser given a deeply nested 200 KB
//! file takes minutes), and YAML streams give one document per `---`.

use serde_json::Value;

use super::input::InputError;

/// Largest file read: compiled Bicep templates of whole landing zones stay
/// well below this.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting accepted. Real templates stay under 30 levels; the limit
/// is checked by a linear scan before parsing.
pub const MAX_DEPTH: usize = 100;
/// Documents in one YAML stream.
pub const MAX_DOCUMENTS: usize = 1_000;

/// The text encodings a design file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    pub fn describe(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with a byte-order mark",
            Encoding::Utf16Le => "UTF-16 little-endian",
            Encoding::Utf16Be => "UTF-16 big-endian",
        }
    }
}

/// Detects the encoding and decodes to text; `label` names the file in
/// errors.
pub fn decode(bytes: &[u8], label: &str) -> Result<(String, Encoding), InputError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(InputError::new(
            label,
            format!(
                "the file has {} bytes, more than the {} aksnet reads; give the template itself, not an archive or a log",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let (encoding, body) = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => (Encoding::Utf8Bom, rest),
        [0xFF, 0xFE, rest @ ..] => (Encoding::Utf16Le, rest),
        [0xFE, 0xFF, rest @ ..] => (Encoding::Utf16Be, rest),
        // UTF-16 without a BOM: ASCII text has a NUL in every other byte.
        [a, 0, ..] if *a != 0 && looks_utf16(bytes, 1) => (Encoding::Utf16Le, bytes),
        [0, b, ..] if *b != 0 && looks_utf16(bytes, 0) => (Encoding::Utf16Be, bytes),
        _ => (Encoding::Utf8, bytes),
    };
    let text = match encoding {
        Encoding::Utf8 | Encoding::Utf8Bom => std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|e| {
                InputError::new(
                    label,
                    format!(
                        "the file is not valid UTF-8 (byte {} is not part of a UTF-8 character); save it as UTF-8 or UTF-16",
                        e.valid_up_to()
                    ),
                )
            })?,
        Encoding::Utf16Le | Encoding::Utf16Be => {
            if body.len() % 2 != 0 {
                return Err(InputError::new(
                    label,
                    format!(
                        "the file looks like {} but has an odd number of bytes; save it again as UTF-8",
                        encoding.describe()
                    ),
                ));
            }
            let units = body.chunks_exact(2).map(|c| match encoding {
                Encoding::Utf16Le => u16::from_le_bytes([c[0], c[1]]),
                _ => u16::from_be_bytes([c[0], c[1]]),
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| {
                    InputError::new(
                        label,
                        format!(
                            "the file is {} with an invalid surrogate pair; save it again as UTF-8",
                            encoding.describe()
                        ),
                    )
                })?
        }
    };
    // A BOM inside UTF-16 text decodes to U+FEFF; drop it too.
    let text = text
        .strip_prefix('\u{feff}')
        .map_or(text.clone(), str::to_string);
    Ok((text, encoding))
}

fn looks_utf16(bytes: &[u8], nul_at: usize) -> bool {
    let sample = &bytes[..bytes.len().min(64)];
    let pairs = sample.len() / 2;
    pairs > 0
        && sample
            .chunks_exact(2)
            .filter(|c| c[nul_at] == 0 && c[1 - nul_at] != 0)
            .count()
            * 4
            >= pairs * 3
}

/// The deepest nesting in `text`, counting JSON/flow brackets and YAML block
/// indentation levels; stops as soon as `limit` is passed.
pub fn nesting_depth(text: &str, limit: usize) -> usize {
    let mut deepest = 0usize;
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    let mut in_str: Option<char> = None;
    for line in text.lines() {
        if flow == 0 && in_str.is_none() {
            let trimmed = line.trim_start_matches([' ', '-']);
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                // Block sequences ("- - - x") nest once per dash.
                let indent = line.len() - trimmed.len();
                while indents.last().is_some_and(|&i| i >= indent) {
                    indents.pop();
                }
                indents.push(indent);
                let dashes = line[..indent].matches('-').count();
                deepest = deepest.max(indents.len() + dashes);
            }
        }
        let mut escaped = false;
        for ch in line.chars() {
            match in_str {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' && q == '"' {
                        escaped = true;
                    } else if ch == q {
                        in_str = None;
                    }
                }
                None => match ch {
                    '"' => in_str = Some('"'),
                    '[' | '{' => {
                        flow += 1;
                        deepest = deepest.max(indents.len() + flow);
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    '#' if flow == 0 => break,
                    _ => {}
                },
            }
        }
        // Single quotes only delimit strings in JSON-free YAML; a JSON string
        // never spans lines, so a quote left open ends with the line.
        if in_str == Some('\'') {
            in_str = None;
        }
        if deepest > limit {
            return deepest;
        }
    }
    deepest
}

/// Parses a design file: JSON, or a YAML stream of one or more documents.
/// `is_json` skips the YAML parser for `.json` files (faster, and its errors
/// name JSON positions).
pub fn parse(bytes: &[u8], label: &str, is_json: bool) -> Result<Vec<Value>, InputError> {
    let (text, encoding) = decode(bytes, label)?;
    let note = match encoding {
        Encoding::Utf8 => String::new(),
        e => format!(" (read as {})", e.describe()),
    };
    let depth = nesting_depth(&text, MAX_DEPTH);
    if depth > MAX_DEPTH {
        return Err(InputError::new(
            label,
            format!(
                "the document is nested more than {MAX_DEPTH} levels deep{note}; no AKS template needs that, give the template itself"
            ),
        ));
    }
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(InputError::new(
            label,
            format!("the file is empty{note}; give an ARM/Bicep template, a managedClusters resource, az aks show output, or Kubernetes YAML"),
        ));
    }
    if is_json || trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => return Ok(vec![v]),
            Err(e) if is_json => {
                return Err(InputError::new(label, format!("not valid JSON{note}: {e}")))
            }
            // Not JSON after all: YAML flow style may still read it.
            Err(_) => {}
        }
    }
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        if i >= MAX_DOCUMENTS {
            return Err(InputError::new(
                label,
                format!("the YAML stream has more than {MAX_DOCUMENTS} documents"),
            ));
        }
        let v = <Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
            let which = if i == 0 {
                String::new()
            } else {
                format!(" (document {})", i + 1)
            };
            InputError::new(label, format!("not valid YAML or JSON{which}{note}: {e}"))
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    if docs.is_empty() {
        return Err(InputError::new(
            label,
            format!("the file holds no document{note}"),
        ));
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn utf16(s: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if le { [0xFF, 0xFE] } else { [0xFE, 0xFF] });
        }
        for u in s.encode_utf16() {
            out.extend(if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn reads_every_encoding_a_user_may_save() {
        let json = r#"{"networkPlugin": "kubenet"}"#;
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend(json.as_bytes());
        for (bytes, enc) in [
            (json.as_bytes().to_vec(), Encoding::Utf8),
            (bom, Encoding::Utf8Bom),
            (utf16(json, true, true), Encoding::Utf16Le),
            (utf16(json, false, true), Encoding::Utf16Be),
            (utf16(json, true, false), Encoding::Utf16Le),
        ] {
            let (text, got) = decode(&bytes, "f").unwrap();
            assert_eq!(got, enc);
            assert_eq!(text, json);
            let docs = parse(&bytes, "f.json", true).unwrap();
            assert_eq!(docs[0]["networkPlugin"], "kubenet", "{enc:?}");
        }
    }

    #[test]
    fn errors_name_the_encoding() {
        let mut bad = utf16("{\"a\": ", true, true);
        bad.push(b'x');
        let e = parse(&bad, "win.json", true).unwrap_err();
        assert!(e.message.contains("UTF-16"), "{e}");
        let e = parse(&[0xC3, 0x28], "latin.yaml", false).unwrap_err();
        assert!(e.message.contains("not valid UTF-8"), "{e}");
        let mut truncated = vec![0xEF, 0xBB, 0xBF];
        truncated.extend(b"{\"networkPlugin\": ");
        let e = parse(&truncated, "bom.json", true).unwrap_err();
        assert!(e.message.contains("byte-order mark"), "{e}");
    }

    #[test]
    fn multi_document_yaml() {
        let docs = parse(b"---\nkind: A\n---\nkind: B\n---\n", "s.yaml", false).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "B");
    }

    #[test]
    fn deep_nesting_is_refused_fast() {
        // 200 KB of nested YAML: a block mapping chain and a flow chain.
        let mut block = String::new();
        for i in 0..2_000 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for text in [block, flow] {
            let start = Instant::now();
            let e = parse(text.as_bytes(), "deep.yaml", false).unwrap_err();
            assert!(e.message.contains("nested more than 100"), "{e}");
            assert!(start.elapsed() < Duration::from_millis(500));
        }
        let ok = "a:\n  b:\n    - c: [1, {d: 2}]\n";
        assert!(nesting_depth(ok, 100) <= 6);
        assert!(parse(ok.as_bytes(), "ok.yaml", false).is_ok());
    }

    #[test]
    fn empty_and_oversized_files() {
        assert!(parse(b"  \n", "e.yaml", false)
            .unwrap_err()
            .message
            .contains("empty"));
        let big = vec![b' '; MAX_FILE_BYTES + 1];
        assert!(parse(&big, "big.json", true)
            .unwrap_err()
            .message
            .contains("more than"));
    }
}
