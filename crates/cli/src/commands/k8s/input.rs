//! `-f FILE|DIR|-`: reading manifests into documents.

use std::io::Read;
use std::path::Path;

use aksnet_core::k8s::documents::{self, Document, InputError};

/// Every document of every `-f`, in order. A directory contributes its
/// `*.yaml`, `*.yml` and `*.json` files in name order (not recursively, as
/// kubectl without `-R`).
pub fn documents(files: &[String]) -> Result<Vec<Document>, InputError> {
    let mut out = vec![];
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| unreadable("standard input", e))?;
            out.extend(documents::parse("standard input", &text)?);
            continue;
        }
        let path = Path::new(f);
        let meta = std::fs::metadata(path).map_err(|e| unreadable(f, e))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| unreadable(f, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|x| x.to_str())
                            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            entries.sort();
            if entries.is_empty() {
                return Err(InputError {
                    location: f.clone(),
                    message: "the directory holds no .yaml, .yml or .json file".into(),
                });
            }
            for p in entries {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(&p).map_err(|e| unreadable(&shown, e))?;
                out.extend(documents::parse(&shown, &text)?);
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| unreadable(f, e))?;
            out.extend(documents::parse(f, &text)?);
        }
    }
    Ok(out)
}

fn unreadable(what: &str, e: std::io::Error) -> InputError {
    InputError {
        location: what.to_string(),
        message: format!("cannot read it: {e}"),
    }
}
