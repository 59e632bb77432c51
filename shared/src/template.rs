//! Placeholders in reply and DM texts. `{username}` is the commenter's Instagram username and
//! `{username|there}` says what to write when Meta sent none; `{{` and `}}` are literal braces.
//! Anything else in braces is sent as written, and campaign files refuse it.

/// Instagram usernames are at most 30 characters: the longest a text can grow by one.
pub const MAX_USERNAME_CHARS: usize = 30;

/// What a text's placeholders stand for, for one recipient.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub username: Option<&'a str>,
}

/// One piece of a text: as written, or a placeholder.
enum Piece<'a> {
    Literal(&'a str),
    Username {
        fallback: &'a str,
    },
    /// `{...}` that names nothing known, kept as written.
    Unknown(&'a str),
}

fn pieces(text: &str) -> (Vec<Piece<'_>>, Option<&str>) {
    let mut out = Vec::new();
    let mut rest = text;
    let mut unclosed = None;
    while let Some(at) = rest.find(['{', '}']) {
        out.push(Piece::Literal(&rest[..at]));
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Piece::Literal(&tail[..1]));
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            out.push(Piece::Literal("}"));
            rest = after;
        } else if let Some(end) = tail.find('}') {
            let inner = &tail[1..end];
            out.push(match inner.split_once('|') {
                Some(("username", fallback)) => Piece::Username { fallback },
                None if inner == "username" => Piece::Username { fallback: "" },
                _ => Piece::Unknown(&tail[..=end]),
            });
            rest = &tail[end + 1..];
        } else {
            unclosed = Some(tail);
            out.push(Piece::Literal(tail));
            rest = "";
        }
    }
    out.push(Piece::Literal(rest));
    (out, unclosed)
}

/// The text for one recipient.
pub fn render(text: &str, vars: Vars<'_>) -> String {
    if !text.contains(['{', '}']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + MAX_USERNAME_CHARS);
    for piece in pieces(text).0 {
        match piece {
            Piece::Literal(s) | Piece::Unknown(s) => out.push_str(s),
            Piece::Username { fallback } => {
                out.push_str(vars.username.filter(|u| !u.is_empty()).unwrap_or(fallback));
            }
        }
    }
    out
}

/// The longest the text can become, for checking Meta's length limits before sending.
pub fn longest(text: &str) -> String {
    let (pieces, _) = pieces(text);
    let longest_fallback = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Username { fallback } => Some(fallback.chars().count()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let stand_in = "u".repeat(MAX_USERNAME_CHARS.max(longest_fallback));
    render(
        text,
        Vars {
            username: Some(&stand_in),
        },
    )
}

/// What is wrong with a text's placeholders; `username_known`: whether the trigger tells the
/// username (comments do, direct messages do not).
pub fn problems(text: &str, username_known: bool) -> Vec<String> {
    let (pieces, unclosed) = pieces(text);
    let mut found = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Unknown(p) => found.push(format!(
                "{p} is not a placeholder (use {{username}}, or {{{{ and }}}} for braces)"
            )),
            Piece::Username { .. } if !username_known => found.push(
                "{username} is only known for comments (Meta sends no username with a message)"
                    .to_owned(),
            ),
            _ => {}
        }
    }
    if let Some(tail) = unclosed {
        found.push(format!(
            "{tail:?} opens a placeholder that never closes (write {{{{ for a brace)"
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(username: Option<&str>) -> Vars<'_> {
        Vars { username }
    }

    #[test]
    fn username_and_its_fallback() {
        let text = "@{username} sent you a DM!";
        assert_eq!(render(text, with(Some("ana.b"))), "@ana.b sent you a DM!");
        assert_eq!(render("Hi {username|there}!", with(None)), "Hi there!");
        assert_eq!(render("Hi {username|there}!", with(Some(""))), "Hi there!");
        assert_eq!(render("Hi {username}!", with(None)), "Hi !");
    }

    #[test]
    fn braces_escape_and_unknown_placeholders_stay_as_written() {
        assert_eq!(
            render("{{code}} and }} {price} {", with(Some("x"))),
            "{code} and } {price} {"
        );
        assert_eq!(render("no placeholders", with(None)), "no placeholders");
    }

    #[test]
    fn longest_assumes_the_longest_username() {
        assert_eq!(
            longest("@{username}").chars().count(),
            1 + MAX_USERNAME_CHARS
        );
        let long_fallback = format!("{{username|{}}}", "f".repeat(40));
        assert_eq!(longest(&long_fallback).chars().count(), 40);
    }

    #[test]
    fn problems_name_what_to_write_instead() {
        assert!(problems("Hi {username|there} {{ok}}", true).is_empty());
        let p = problems("Hi {first_name}", true);
        assert!(p[0].contains("{first_name} is not a placeholder"), "{p:?}");
        let p = problems("Hi {username", true);
        assert!(p[0].contains("never closes"), "{p:?}");
        let p = problems("Hi {username}", false);
        assert!(p[0].contains("only known for comments"), "{p:?}");
    }
}
