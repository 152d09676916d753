//! Request parameters as Share reads them: the query string first, then the JSON body, names
//! compared in any case, values percent-decoded.

use std::collections::HashMap;

use bytes::Bytes;

pub(super) fn query_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_ascii_lowercase(), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Request parameters: query string first, then the JSON body, names compared in any case.
pub(super) struct Params {
    query: HashMap<String, String>,
    /// The JSON body, when it was an object.
    pub(super) body: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether the body was JSON at all.
    pub(super) body_is_json: bool,
}

impl Params {
    pub(super) fn new(query: HashMap<String, String>, body: &Bytes) -> Self {
        let trimmed = body.iter().all(u8::is_ascii_whitespace);
        let parsed: Option<serde_json::Value> = if trimmed {
            None
        } else {
            serde_json::from_slice(body).ok()
        };
        let body_is_json = trimmed || parsed.is_some();
        let body = match parsed {
            Some(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        };
        Params {
            query,
            body,
            body_is_json,
        }
    }

    pub(super) fn body_value(&self, name: &str) -> Option<&serde_json::Value> {
        self.body
            .as_ref()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A body field as a string; `Err` carries the JSON value found instead.
    pub(super) fn body_string(&self, name: &str) -> Result<Option<&str>, NotAString> {
        match self.body_value(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(NotAString {
                found: other.to_string(),
            }),
        }
    }

    pub(super) fn any_text(&self, name: &str) -> Option<String> {
        if let Some(value) = self.query.get(&name.to_ascii_lowercase()) {
            return Some(value.clone());
        }
        match self.body_value(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A request body field that should be a JSON string and is not.
#[derive(Debug, thiserror::Error)]
#[error("expected a JSON string, found {found}")]
pub(super) struct NotAString {
    /// The JSON value found, as text.
    pub(super) found: String,
}
