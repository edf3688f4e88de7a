//! keepalived.conf text → a tree of statements, with `include` resolved through the caller's
//! loader.
//!
//! The syntax follows keepalived's reader (`keepalived/core/parser.c`, `lib/parser.c` in 2.x):
//! words separated by blanks; `!` or `#` outside a quoted string starts a comment that runs to
//! the end of the line; `\#` and `\!` outside quotes are literal characters; a `\` that is the
//! last character of a line (even in a comment) continues the statement on the next line
//! (`decomment`); `"..."` makes one word of everything up to the next `"` (no escapes); `{`
//! and `}` are words of their own even when written against another word. A statement is the
//! words of one line; a statement followed by `{` (on the same line or the next) opens a block
//! that runs to the matching `}`. `include PATTERN...` is read where it stands, as keepalived
//! reads it line by line, so a block may open in one file and close in another.

use super::error::{ErrorKind, KeepalivedError};
use super::{
    Loader, MAX_FILES, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_NESTING, MAX_TOTAL_BYTES, MAX_WORDS,
};

/// Where a word starts: index into the file list, 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: usize,
    pub line: usize,
    pub column: usize,
}

/// One word of a statement.
#[derive(Clone, Debug)]
pub(crate) struct Word {
    pub text: String,
    pub pos: Pos,
}

/// A statement: its words and, for a block keyword, the statements inside.
#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        &self.words[0].text
    }
    pub fn pos(&self) -> Pos {
        self.words[0].pos
    }
}

#[derive(Debug)]
enum Tok {
    Word(Word),
    Open(Pos),
    Close(Pos),
    Eol,
}

/// The loaded files (names in load order; index 0 is the main file) and the statement tree.
pub(crate) struct Parsed {
    pub files: Vec<String>,
    pub stmts: Vec<Stmt>,
    /// `include` patterns that matched nothing: (position, pattern).
    pub empty_includes: Vec<(Pos, String)>,
}

struct Lexer<'a> {
    loader: &'a mut dyn Loader,
    files: Vec<String>,
    toks: Vec<Tok>,
    total_bytes: usize,
    empty_includes: Vec<(Pos, String)>,
}

impl Lexer<'_> {
    fn err(&self, pos: Pos, kind: ErrorKind) -> KeepalivedError {
        KeepalivedError {
            file: self.files[pos.file].clone(),
            line: pos.line,
            column: pos.column,
            kind,
        }
    }

    fn add_file(
        &mut self,
        name: &str,
        text: &str,
        at: Option<Pos>,
    ) -> Result<usize, KeepalivedError> {
        let fail = |s: &Self, kind| match at {
            Some(p) => Err(s.err(p, kind)),
            None => Err(KeepalivedError {
                file: name.to_string(),
                line: 1,
                column: 1,
                kind,
            }),
        };
        if self.files.len() >= MAX_FILES {
            return fail(self, ErrorKind::TooManyFiles { limit: MAX_FILES });
        }
        if text.len() > MAX_FILE_BYTES || self.total_bytes + text.len() > MAX_TOTAL_BYTES {
            return fail(
                self,
                ErrorKind::TooLarge {
                    limit: MAX_TOTAL_BYTES.min(MAX_FILE_BYTES),
                },
            );
        }
        self.total_bytes += text.len();
        self.files.push(name.to_string());
        Ok(self.files.len() - 1)
    }

    /// Tokenizes one file, recursing into its includes.
    fn file(&mut self, file: usize, text: &str, depth: usize) -> Result<(), KeepalivedError> {
        let mut continued = false;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let start = self.toks.len();
            let joins_next = self.line(file, line_no, line)?;
            if self.toks.len() > MAX_WORDS {
                let pos = Pos {
                    file,
                    line: line_no,
                    column: 1,
                };
                return Err(self.err(
                    pos,
                    ErrorKind::TooMany {
                        what: "words",
                        limit: MAX_WORDS,
                    },
                ));
            }
            // A line ending in `\` goes on on the next one: no end of statement here.
            let first_of_statement = !continued;
            continued = joins_next;
            if joins_next {
                continue;
            }
            // `include` as the first word of a line: replace the line by the files it names.
            let is_include = first_of_statement
                && matches!(
                    self.toks.get(start),
                    Some(Tok::Word(w)) if w.text == "include"
                );
            if !is_include {
                self.toks.push(Tok::Eol);
                continue;
            }
            let line_toks: Vec<Tok> = self.toks.drain(start..).collect();
            let mut words = line_toks.into_iter();
            let Some(Tok::Word(kw)) = words.next() else {
                unreachable!("checked above")
            };
            let mut patterns = Vec::new();
            for t in words {
                match t {
                    Tok::Word(w) => patterns.push(w),
                    Tok::Open(p) | Tok::Close(p) => {
                        return Err(self.err(
                            p,
                            ErrorKind::BadValue {
                                keyword: "include".into(),
                                expected: "file names or glob patterns",
                                found: "a brace".into(),
                            },
                        ))
                    }
                    Tok::Eol => {}
                }
            }
            if patterns.is_empty() {
                return Err(self.err(
                    kw.pos,
                    ErrorKind::MissingValue {
                        keyword: "include".into(),
                        expected: "a file name or glob pattern",
                    },
                ));
            }
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(self.err(
                    kw.pos,
                    ErrorKind::IncludeDepth {
                        limit: MAX_INCLUDE_DEPTH,
                    },
                ));
            }
            for pat in patterns {
                let resolved = resolve_relative(&self.files[file], &pat.text);
                let loaded = (self.loader)(&resolved).map_err(|reason| {
                    self.err(
                        pat.pos,
                        ErrorKind::IncludeFailed {
                            pattern: resolved.clone(),
                            reason,
                        },
                    )
                })?;
                if loaded.is_empty() {
                    self.empty_includes.push((pat.pos, resolved));
                }
                for (name, text) in loaded {
                    let idx = self.add_file(&name, &text, Some(pat.pos))?;
                    self.file(idx, &text, depth + 1)?;
                }
            }
            self.toks.push(Tok::Eol);
        }
        Ok(())
    }

    /// Tokenizes one line; returns whether it ends in a `\` that continues it on the next
    /// line (keepalived's `decomment` / `read_line`: only a `\` that is the very last
    /// character does, in or out of a comment-free stretch; `\#` and `\!` outside quotes are
    /// a literal `#` and `!`; any other `\` is an ordinary character).
    fn line(&mut self, file: usize, line: usize, text: &str) -> Result<bool, KeepalivedError> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let pos = |i: usize| Pos {
            file,
            line,
            column: i + 1,
        };
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '!' || c == '#' {
                // keepalived still looks for a final `\` in the comment.
                return Ok(ends_in_continuation(&chars[i..]));
            } else if c == '\\' && i + 1 == chars.len() {
                return Ok(true);
            } else if c == '{' {
                self.toks.push(Tok::Open(pos(i)));
                i += 1;
            } else if c == '}' {
                self.toks.push(Tok::Close(pos(i)));
                i += 1;
            } else if c == '"' {
                let start = i;
                i += 1;
                let mut s = String::new();
                while i < chars.len() && chars[i] != '"' {
                    s.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(self.err(pos(start), ErrorKind::UnterminatedQuote));
                }
                i += 1;
                self.toks.push(Tok::Word(Word {
                    text: s,
                    pos: pos(start),
                }));
            } else {
                let start = i;
                let mut s = String::new();
                let mut joins_next = false;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '{' | '}' | '"' | '!' | '#')
                {
                    if chars[i] == '\\' {
                        match chars.get(i + 1) {
                            None => {
                                joins_next = true;
                                i += 1;
                                break;
                            }
                            // An escaped comment character is literal.
                            Some(&e @ ('#' | '!')) => {
                                s.push(e);
                                i += 2;
                            }
                            // A pair: the second one cannot continue the line.
                            Some('\\') => {
                                s.push_str("\\\\");
                                i += 2;
                            }
                            Some(_) => {
                                s.push('\\');
                                i += 1;
                            }
                        }
                        continue;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                if !s.is_empty() {
                    self.toks.push(Tok::Word(Word {
                        text: s,
                        pos: pos(start),
                    }));
                }
                if joins_next {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Whether the rest of a line (from a comment start) ends in a continuation `\`: a `\` takes
/// the character after it, so only an unpaired final one counts.
fn ends_in_continuation(rest: &[char]) -> bool {
    let mut j = 0;
    while j < rest.len() {
        if rest[j] == '\\' {
            if j + 1 == rest.len() {
                return true;
            }
            j += 2;
        } else {
            j += 1;
        }
    }
    false
}

/// `pattern` relative to the directory of `including` (absolute patterns unchanged), with `.`
/// and `..` segments folded.
pub(crate) fn resolve_relative(including: &str, pattern: &str) -> String {
    let joined = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        match including.rfind('/') {
            Some(i) => format!("{}/{}", &including[..i], pattern),
            None => pattern.to_string(),
        }
    };
    normalize(&joined)
}

fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else {
        body
    }
}

/// Reads `main` (named `main_name`) and everything it includes into a statement tree.
pub(crate) fn parse_tree(
    main_name: &str,
    main: &str,
    loader: &mut dyn Loader,
) -> Result<Parsed, KeepalivedError> {
    let mut lx = Lexer {
        loader,
        files: Vec::new(),
        toks: Vec::new(),
        total_bytes: 0,
        empty_includes: Vec::new(),
    };
    let idx = lx.add_file(main_name, main, None)?;
    lx.file(idx, main, 0)?;
    let files = lx.files;
    let mut toks = lx.toks;
    let err = |pos: Pos, kind| KeepalivedError {
        file: files[pos.file].clone(),
        line: pos.line,
        column: pos.column,
        kind,
    };

    // Explicit stack of open blocks: (statements so far, header words, position of `{`).
    let mut stack: Vec<(Vec<Stmt>, Vec<Word>, Pos)> = Vec::new();
    let mut cur: Vec<Stmt> = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &mut toks[i] {
            // Each token is visited once: move the word out instead of copying it.
            Tok::Word(w) => words.push(Word {
                text: core::mem::take(&mut w.text),
                pos: w.pos,
            }),
            Tok::Eol => {
                if !words.is_empty() {
                    // A `{` on a following line still opens this statement's block.
                    let mut j = i + 1;
                    while matches!(toks.get(j), Some(Tok::Eol)) {
                        j += 1;
                    }
                    if matches!(toks.get(j), Some(Tok::Open(_))) {
                        i = j;
                        continue;
                    }
                    cur.push(Stmt {
                        words: core::mem::take(&mut words),
                        block: None,
                    });
                }
            }
            Tok::Open(p) => {
                if words.is_empty() {
                    return Err(err(*p, ErrorKind::BlockWithoutKeyword));
                }
                if stack.len() >= MAX_NESTING {
                    return Err(err(*p, ErrorKind::TooDeep { limit: MAX_NESTING }));
                }
                stack.push((core::mem::take(&mut cur), core::mem::take(&mut words), *p));
            }
            Tok::Close(p) => {
                if !words.is_empty() {
                    cur.push(Stmt {
                        words: core::mem::take(&mut words),
                        block: None,
                    });
                }
                let Some((parent, header, _)) = stack.pop() else {
                    return Err(err(*p, ErrorKind::UnexpectedClose));
                };
                let inner = core::mem::replace(&mut cur, parent);
                cur.push(Stmt {
                    words: header,
                    block: Some(inner),
                });
            }
        }
        i += 1;
    }
    if let Some((_, header, open)) = stack.pop() {
        return Err(err(
            open,
            ErrorKind::UnclosedBlock {
                keyword: header[0].text.clone(),
            },
        ));
    }
    if !words.is_empty() {
        cur.push(Stmt { words, block: None });
    }
    Ok(Parsed {
        files,
        stmts: cur,
        empty_includes: lx.empty_includes,
    })
}

/// Shell-style glob match of `name` against `pattern`: `*` and `?` match within one path
/// segment (not `/`), `[abc]` / `[a-z]` / `[!a]` classes; everything else literally.
/// Iterative with backtracking on the last `*`, so it is linear-ish and never recurses.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, n[ni]) {
                        if matched && n[ni] != '/' {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] && c != '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) if n[sn] != '/' => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at `p[start]`: whether `c` matches and the index after `]`; `None` when the
/// class is not closed (then `[` is literal).
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}
