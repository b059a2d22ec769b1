//! Files a newcomer can read: no source file under `src/` over 800 lines, no function over 100.
//!
//! Lines are physical lines. A file counts every line it has, tests included (a `mod tests` file
//! is split like any other). A function counts from the line its `fn` keyword is on to the line
//! of its closing brace; its doc comment and attributes do not count. Functions are found by a
//! small scanner that skips comments, strings and character literals, so a brace in `"{"` or
//! `'}'` does not end a body early; the scanner is unit-tested at the bottom of this file.

use std::path::{Path, PathBuf};

/// Longest source file, in physical lines.
const MAX_FILE_LINES: usize = 800;
/// Longest function, in physical lines from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

#[test]
fn no_file_or_function_under_src_is_too_long() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty(), "no .rs files found under src/");
    let mut problems = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        problems.extend(shape_problems(&rel, &text));
    }
    assert!(
        problems.is_empty(),
        "{} place(s) too long to read (files ≤ {MAX_FILE_LINES} lines, functions ≤ \
         {MAX_FN_LINES}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every `.rs` file under `dir`, recursively, sorted so the failure message is stable.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// One message per limit broken in the file `rel` whose text is `text`.
fn shape_problems(rel: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lines = text.lines().count();
    if lines > MAX_FILE_LINES {
        problems.push(format!(
            "{rel}: file has {lines} lines (limit {MAX_FILE_LINES})"
        ));
    }
    for f in functions(text) {
        if f.lines() > MAX_FN_LINES {
            problems.push(format!(
                "{rel}:{} fn {} has {} lines (limit {MAX_FN_LINES})",
                f.start_line,
                f.name,
                f.lines()
            ));
        }
    }
    problems
}

/// A function with a body: its name and the 1-based lines of its `fn` keyword and closing brace.
#[derive(Debug, PartialEq, Eq)]
struct Function {
    name: String,
    start_line: usize,
    end_line: usize,
}

impl Function {
    fn lines(&self) -> usize {
        self.end_line - self.start_line + 1
    }
}

/// One piece of code that is not in a comment, string or character literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword (raw identifiers keep their `r#`).
    Word(String),
    /// Any other single character of code (punctuation; digits are words).
    Punct(char),
}

/// The code tokens of `text` with their 1-based line, comments, strings and characters dropped.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let next = i + literal_or_comment_len(&chars, i);
        if next > i {
            line += chars[i..next].iter().filter(|&&c| c == '\n').count();
            i = next;
            continue;
        }
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_ident_char(c) {
            let end = (i..chars.len())
                .find(|&j| !is_ident_char(chars[j]))
                .unwrap_or(chars.len());
            out.push((Token::Word(chars[i..end].iter().collect()), start_line));
            i = end;
        } else if c == '\'' {
            // A lifetime or label (`'a`, `'outer:`): char literals were taken above.
            i += 1;
        } else {
            out.push((Token::Punct(c), start_line));
            i += 1;
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// How many characters from `i` are a comment, string or character literal (0 if none starts
/// there). An unterminated one runs to the end of the text.
fn literal_or_comment_len(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied();
    let prev_is_ident = i > 0 && is_ident_char(chars[i - 1]);
    match (chars[i], at(i + 1)) {
        ('/', Some('/')) => (i..chars.len())
            .find(|&j| chars[j] == '\n')
            .unwrap_or(chars.len())
            .saturating_sub(i),
        ('/', Some('*')) => block_comment_len(chars, i),
        ('"', _) => quoted_len(chars, i, '"'),
        ('\'', _) => char_literal_len(chars, i),
        ('b', Some('\'')) if !prev_is_ident => 1 + char_literal_len(chars, i + 1),
        ('b' | 'c', Some('r')) if !prev_is_ident => match raw_string_len(chars, i + 1) {
            0 => 0,
            n => n + 1,
        },
        ('r', _) if !prev_is_ident => raw_string_len(chars, i),
        _ => 0,
    }
}

/// Length of a (nestable) `/* … */` comment starting at `i`.
fn block_comment_len(chars: &[char], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < chars.len() {
        match (chars[j], chars.get(j + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                j += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j - i;
                }
            }
            _ => j += 1,
        }
    }
    chars.len() - i
}

/// Length of a literal opened by `quote` at `i`, closed by the next unescaped `quote`.
fn quoted_len(chars: &[char], i: usize, quote: char) -> usize {
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            c if c == quote => return j + 1 - i,
            _ => j += 1,
        }
    }
    chars.len() - i
}

/// Length of a character literal at `i` (`'x'`, `'\n'`, `'\u{7f}'`), or 0 when the quote starts
/// a lifetime or label instead.
fn char_literal_len(chars: &[char], i: usize) -> usize {
    match chars.get(i + 1) {
        Some('\\') => quoted_len(chars, i, '\''),
        Some(_) if chars.get(i + 2) == Some(&'\'') => 3,
        _ => 0,
    }
}

/// Length of a raw string `r"…"` / `r#"…"#` at `i` (pointing at the `r`), or 0 when the `r`
/// starts anything else (an identifier, a raw identifier `r#type`).
fn raw_string_len(chars: &[char], i: usize) -> usize {
    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
    if chars.get(i + 1 + hashes) != Some(&'"') {
        return 0;
    }
    let body = i + 2 + hashes;
    let mut j = body;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return j + 1 + hashes - i;
        }
        j += 1;
    }
    chars.len() - i
}

/// Every function with a body in `text` (free functions, methods, nested functions), in order.
/// `fn` pointer types (`fn(u8) -> u8`) and bodiless declarations (`fn f();`) are not functions.
fn functions(text: &str) -> Vec<Function> {
    let toks = tokens(text);
    let mut out = Vec::new();
    for (k, (tok, line)) in toks.iter().enumerate() {
        if *tok != Token::Word("fn".into()) {
            continue;
        }
        let Some((Token::Word(name), _)) = toks.get(k + 1) else {
            continue;
        };
        let Some(open) = body_start(&toks, k + 2) else {
            continue;
        };
        if let Some(close) = matching_brace(&toks, open) {
            out.push(Function {
                name: name.clone(),
                start_line: *line,
                end_line: toks[close].1,
            });
        }
    }
    out
}

/// Index of the `{` opening the body of a function whose signature starts at token `from`, or
/// None for a declaration ending in `;`. Braces inside the parameter list (`Point { x, y }:
/// Point`) or brackets (`[u8; { N }]`) belong to the signature.
fn body_start(toks: &[(Token, usize)], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, (tok, _)) in toks.iter().enumerate().skip(from) {
        match tok {
            Token::Punct('(' | '[') => depth += 1,
            Token::Punct(')' | ']') => depth -= 1,
            Token::Punct('{') if depth == 0 => return Some(k),
            Token::Punct(';') if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// Index of the `}` closing the `{` at token `open`.
fn matching_brace(toks: &[(Token, usize)], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, (tok, _)) in toks.iter().enumerate().skip(open) {
        match tok {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

// --- the scanner on small inputs ---

fn spans(text: &str) -> Vec<(String, usize, usize)> {
    functions(text)
        .into_iter()
        .map(|f| (f.name, f.start_line, f.end_line))
        .collect()
}

fn span(name: &str, start: usize, end: usize) -> (String, usize, usize) {
    (name.to_string(), start, end)
}

#[test]
fn scanner_counts_from_the_fn_line_to_the_closing_brace() {
    let src = "/// doc\n#[inline]\npub fn a() {\n    1;\n}\n\nfn b() -> u8 { 2 }\n";
    assert_eq!(spans(src), vec![span("a", 3, 5), span("b", 7, 7)]);
    assert_eq!(functions(src)[0].lines(), 3);
}

#[test]
fn scanner_ignores_braces_in_strings_chars_and_comments() {
    let src = r####"fn a() {
    let s = "}\"}";
    let c = '}';
    let e = '\'';
    let u = '\u{7d}';
    let b = b'}';
    // }
    /* } /* nested } */ } */
    let r = r#"}"# ;
    let rr = r##"a "# } "##;
    let br = br"}";
}
fn b() {}
"####;
    assert_eq!(spans(src), vec![span("a", 1, 12), span("b", 13, 13)]);
}

#[test]
fn scanner_tells_lifetimes_and_labels_from_chars() {
    let src = "fn a<'x>(s: &'x str) -> &'x str {\n    'outer: loop { break 'outer; }\n    s\n}\nfn b() { let _ = '{'; }\n";
    assert_eq!(spans(src), vec![span("a", 1, 4), span("b", 5, 5)]);
}

#[test]
fn scanner_skips_declarations_and_fn_pointer_types() {
    let src = "trait T {\n    fn decl(&self);\n    fn with_default(&self) {\n    }\n}\nfn p(f: fn(u8) -> u8) -> [u8; 2] {\n    [f(1), 0]\n}\n";
    assert_eq!(
        spans(src),
        vec![span("with_default", 3, 4), span("p", 6, 8)]
    );
}

#[test]
fn scanner_keeps_destructuring_braces_in_the_signature() {
    let src = "fn a(P { x, y }: P) -> u8\nwhere\n    P: Copy,\n{\n    x + y\n}\n";
    assert_eq!(spans(src), vec![span("a", 1, 6)]);
}

#[test]
fn scanner_finds_nested_functions_and_methods() {
    let src = "impl S {\n    fn outer(&self) {\n        fn inner() {\n        }\n    }\n}\n";
    assert_eq!(spans(src), vec![span("outer", 2, 5), span("inner", 3, 4)]);
}

#[test]
fn scanner_does_not_take_identifiers_ending_in_r_or_b_for_literals() {
    // `bar"` and `rub'` are not raw strings or byte chars; `r#type` is a raw identifier.
    let src = "fn a() {\n    let r#type = 1;\n    let br = 2; let rb = 3;\n    let s = \"x\";\n}\n";
    assert_eq!(spans(src), vec![span("a", 1, 5)]);
}

#[test]
fn shape_problems_name_the_file_and_the_function() {
    let long_fn = format!("fn big() {{\n{}}}\n", "    x();\n".repeat(MAX_FN_LINES - 1));
    assert_eq!(
        shape_problems("src/x.rs", &long_fn),
        vec![format!(
            "src/x.rs:1 fn big has {} lines (limit {MAX_FN_LINES})",
            MAX_FN_LINES + 1
        )]
    );
    let fits = format!("fn ok() {{\n{}}}\n", "    x();\n".repeat(MAX_FN_LINES - 2));
    assert!(shape_problems("src/x.rs", &fits).is_empty());
    let long_file = "\n".repeat(MAX_FILE_LINES + 1);
    assert_eq!(
        shape_problems("src/y.rs", &long_file),
        vec![format!(
            "src/y.rs: file has {} lines (limit {MAX_FILE_LINES})",
            MAX_FILE_LINES + 1
        )]
    );
}
