//! Kafka's JAAS configuration syntax, as `sasl.jaas.config` values are written (Kafka's
//! `JaasConfig`, which tokenizes like `java.io.StreamTokenizer`):
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required
//!     username="admin" password="admin-secret" user_alice="alice-secret";
//! ```
//!
//! A login module class, a control flag (`required`, `requisite`, `sufficient`, `optional`),
//! options `name=value` and a terminating `;`. Values are words or strings quoted with `"` or
//! `'` (backslash escapes `\n`, `\t`, `\r`, `\b`, `\f`, `\\`, `\"`, `\'`, octal `\NNN`); `//`
//! and `/* */` comments are skipped. As Kafka, a `sasl.jaas.config` value holds exactly one
//! login module. Sans-io, never panics on input.

use std::collections::BTreeMap;

/// One login module entry of a JAAS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class, e.g. `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub login_module: String,
    /// The control flag as written, lower case (`required`, ...).
    pub flag: String,
    /// The options in the order given (a repeated name keeps its last value, as Java's map).
    pub options: BTreeMap<String, String>,
}

/// Kafka's PLAIN login module class.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// Kafka's SCRAM login module class.
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err("unterminated /* comment".to_string());
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
        } else if c == '=' {
            tokens.push(Token::Equals);
            i += 1;
        } else if c == ';' {
            tokens.push(Token::Semicolon);
            i += 1;
        } else if c == '"' || c == '\'' {
            let quote = c;
            i += 1;
            let mut value = String::new();
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err(format!("unterminated quoted value {quote}{value}"));
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c != '\\' {
                    value.push(c);
                    continue;
                }
                let Some(&escaped) = chars.get(i) else {
                    return Err("backslash at the end of the value".to_string());
                };
                i += 1;
                match escaped {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'a' => value.push('\u{7}'),
                    'v' => value.push('\u{b}'),
                    '0'..='7' => {
                        // StreamTokenizer: up to three octal digits (the first 0-3 for three).
                        let mut code = escaped.to_digit(8).unwrap_or(0);
                        let max_digits = if escaped <= '3' { 2 } else { 1 };
                        for _ in 0..max_digits {
                            match chars.get(i).and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    code = code * 8 + d;
                                    i += 1;
                                }
                                None => break,
                            }
                        }
                        value.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => value.push(other),
                }
            }
            tokens.push(Token::Quoted(value));
        } else {
            let start = i;
            while i < chars.len() {
                let c = chars[i];
                if c.is_whitespace() || matches!(c, '=' | ';' | '"' | '\'') {
                    break;
                }
                if c == '/' && matches!(chars.get(i + 1), Some('/') | Some('*')) {
                    break;
                }
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(tokens)
}

/// Parses a JAAS configuration holding any number of login modules.
pub fn parse_entries(input: &str) -> Result<Vec<JaasEntry>, String> {
    let tokens = tokenize(input)?;
    let mut entries = Vec::new();
    let mut it = tokens.into_iter().peekable();
    while let Some(token) = it.next() {
        let Token::Word(login_module) = token else {
            return Err(format!("expected a login module class, found {token:?}"));
        };
        let flag = match it.next() {
            Some(Token::Word(flag)) => flag.to_ascii_lowercase(),
            other => {
                return Err(format!(
                    "expected a control flag after {login_module}, found {other:?}"
                ))
            }
        };
        if !matches!(
            flag.as_str(),
            "required" | "requisite" | "sufficient" | "optional"
        ) {
            return Err(format!("invalid control flag '{flag}' for {login_module}"));
        }
        let mut options = BTreeMap::new();
        loop {
            match it.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(name)) => {
                    if it.next() != Some(Token::Equals) {
                        return Err(format!("expected '=' after option '{name}'"));
                    }
                    let value = match it.next() {
                        Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                        other => {
                            return Err(format!(
                                "expected a value for option '{name}', found {other:?}"
                            ))
                        }
                    };
                    options.insert(name, value);
                }
                None => {
                    return Err(format!(
                        "the entry for {login_module} does not end with ';'"
                    ))
                }
                Some(other) => return Err(format!("unexpected {other:?} in JAAS options")),
            }
        }
        entries.push(JaasEntry {
            login_module,
            flag,
            options,
        });
    }
    Ok(entries)
}

/// Parses a `sasl.jaas.config` value: exactly one login module, as Kafka's `JaasConfig`
/// requires ("JAAS config property contains N login modules, should be 1 module").
pub fn parse_jaas_config(input: &str) -> Result<JaasEntry, String> {
    let mut entries = parse_entries(input)?;
    if entries.len() != 1 {
        return Err(format!(
            "JAAS config property contains {} login modules, should be 1 module",
            entries.len()
        ));
    }
    Ok(entries.remove(0))
}

/// The PLAIN users of a PlainLoginModule entry: `user_<name>="<password>"` options (Kafka's
/// `PlainServerCallbackHandler`), by user name.
pub fn plain_users(entry: &JaasEntry) -> BTreeMap<String, String> {
    entry
        .options
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("user_")?.to_string(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_users_with_quotes_escapes_and_comments() {
        let entry = parse_jaas_config(
            "org.apache.kafka.common.security.plain.PlainLoginModule required /* admin */\n\
             username=\"admin\" password='admin-secret' // inter-broker\n\
             user_admin=\"admin-secret\" user_alice=\"al\\\"ice\\\\s;e=c\" user_bob=bob-pw;",
        )
        .unwrap();
        assert_eq!(entry.login_module, PLAIN_LOGIN_MODULE);
        assert_eq!(entry.flag, "required");
        let users = plain_users(&entry);
        assert_eq!(users.len(), 3);
        assert_eq!(users["alice"], "al\"ice\\s;e=c");
        assert_eq!(users["bob"], "bob-pw");
        assert_eq!(entry.options["password"], "admin-secret");
    }

    #[test]
    fn rejects_malformed_configs() {
        for bad in [
            "",
            "Module required user_a=\"x\"",
            "Module mandatory;",
            "Module required user_a;",
            "Module required user_a=\"x;",
            "Module required; Other required;",
            "Module required user_a=;",
            "/* open",
            "\"quoted\" required;",
        ] {
            assert!(parse_jaas_config(bad).is_err(), "{bad:?}");
        }
        assert!(parse_jaas_config("M optional a=1 b = '2' ;").is_ok());
    }

    #[test]
    fn octal_escapes() {
        let entry = parse_jaas_config("M required a=\"\\101\\0x\";").unwrap();
        assert_eq!(entry.options["a"], "A\u{0}x");
    }
}
