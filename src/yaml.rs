//! YAML files (`--config.file`, `--web.config.file`, simulator scenarios) parsed with one
//! rule for errors: one line, with where and what, and no advice about the parser's own
//! options, which users cannot set.

use serde::de::DeserializeOwned;

/// A YAML document that does not fit what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// One line: where (`line L column C`) and what.
    pub message: String,
}

/// Parses `text`, or says in one line what is wrong and where.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|error| YamlError {
        message: one_line(&error.to_string()),
    })
}

fn one_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(", set DuplicateKeyPolicy") {
        Some((head, _)) => format!("{head} (each key may appear once)"),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn errors_are_one_line_with_the_place_and_no_parser_advice() {
        let duplicate = parse::<BTreeMap<String, u8>>("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            duplicate.message,
            "line 2 column 1: duplicate mapping key: a (each key may appear once)"
        );
        let unclosed = parse::<BTreeMap<String, Vec<String>>>("a: [b\n").unwrap_err();
        assert!(
            !unclosed.message.contains('\n') && unclosed.message.starts_with("line "),
            "{unclosed}"
        );
        assert_eq!(parse::<BTreeMap<String, u8>>("a: 1\n").unwrap()["a"], 1);
    }
}
