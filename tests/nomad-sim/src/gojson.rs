//! Request bodies decoded like Nomad's `decodeBody` (Go's `encoding/json` `Decoder`):
//! the first JSON value is read and anything after it ignored, and malformed input is
//! reported with Go's texts (`unexpected EOF`, `invalid character '}' looking for
//! beginning of object key string`, ...), which clients see in 400 answers.

use serde_json::Value;

/// Go's `quoteChar`: a byte as it appears in `invalid character ...`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        b'\t' => "'\\t'".into(),
        0x07 => "'\\a'".into(),
        0x08 => "'\\b'".into(),
        0x0c => "'\\f'".into(),
        0x0b => "'\\v'".into(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        c => format!("'{}'", char::from(c)),
    }
}

enum Fail {
    Eof,
    Char(u8, &'static str),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Result<u8, Fail> {
        let c = self.peek().ok_or(Fail::Eof)?;
        self.i += 1;
        Ok(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<(), Fail> {
        self.ws();
        match self.next()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            c @ (b'-' | b'0'..=b'9') => self.number(c),
            b't' => self.literal(b"rue"),
            b'f' => self.literal(b"alse"),
            b'n' => self.literal(b"ull"),
            c => Err(Fail::Char(c, "looking for beginning of value")),
        }
    }

    fn literal(&mut self, rest: &[u8]) -> Result<(), Fail> {
        for want in rest {
            let c = self.next()?;
            if c != *want {
                // Go: `in literal true (expecting 'r')`.
                return Err(Fail::Char(c, literal_context(rest, *want)));
            }
        }
        Ok(())
    }

    fn object(&mut self) -> Result<(), Fail> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            match self.next()? {
                b'"' => self.string()?,
                c => return Err(Fail::Char(c, "looking for beginning of object key string")),
            }
            self.ws();
            match self.next()? {
                b':' => {}
                c => return Err(Fail::Char(c, "after object key")),
            }
            self.value()?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                c => return Err(Fail::Char(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<(), Fail> {
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(()),
                c => return Err(Fail::Char(c, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Result<(), Fail> {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Err(Fail::Char(c, "in \\u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(Fail::Char(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(Fail::Char(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn number(&mut self, first: u8) -> Result<(), Fail> {
        let lead = if first == b'-' {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(Fail::Char(c, "in numeric literal"));
            }
            c
        } else {
            first
        };
        if lead != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(Fail::Char(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(Fail::Char(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(())
    }
}

fn literal_context(rest: &[u8], want: u8) -> &'static str {
    match (rest, want) {
        (b"rue", b'r') => "in literal true (expecting 'r')",
        (b"rue", b'u') => "in literal true (expecting 'u')",
        (b"rue", _) => "in literal true (expecting 'e')",
        (b"alse", b'a') => "in literal false (expecting 'a')",
        (b"alse", b'l') => "in literal false (expecting 'l')",
        (b"alse", b's') => "in literal false (expecting 's')",
        (b"alse", _) => "in literal false (expecting 'e')",
        (_, b'u') => "in literal null (expecting 'u')",
        _ => "in literal null (expecting 'l')",
    }
}

/// Decodes a body like Go's `json.NewDecoder(body).Decode(&v)`: the first value only.
/// The error is Go's text.
pub(crate) fn decode_first(body: &[u8]) -> Result<Value, String> {
    let mut sc = Scanner { b: body, i: 0 };
    sc.ws();
    if sc.peek().is_none() {
        return Err("EOF".into());
    }
    let start = sc.i;
    match sc.value() {
        Err(Fail::Eof) => return Err("unexpected EOF".into()),
        Err(Fail::Char(c, ctx)) => {
            return Err(format!("invalid character {} {ctx}", quote_char(c)));
        }
        Ok(()) => {}
    }
    serde_json::from_slice(&body[start..sc.i]).map_err(|e| e.to_string())
}

/// The Go name of a JSON value's kind in an `UnmarshalTypeError` (`number 1.5` for a
/// number that is no integer, when an integer is wanted).
pub(crate) fn kind(v: &Value, want_int: bool) -> String {
    match v {
        Value::String(_) => "string".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Number(n) if want_int && n.as_i64().is_none() && n.as_u64().is_none() => {
            format!("number {n}")
        }
        Value::Number(_) => "number".into(),
        Value::Null => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        decode_first(s.as_bytes()).expect_err("invalid")
    }

    #[test]
    fn go_texts() {
        assert_eq!(err(""), "EOF");
        assert_eq!(err("  \n"), "EOF");
        assert_eq!(err("{\"Job\":{\"ID\":\"x\"}"), "unexpected EOF");
        assert_eq!(err("nul"), "unexpected EOF");
        assert_eq!(
            err("{not json"),
            "invalid character 'n' looking for beginning of object key string"
        );
        assert_eq!(
            err("{\"a\":1,}"),
            "invalid character '}' looking for beginning of object key string"
        );
        assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            err("{\"a\":1 \"b\":2}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            err("[1,]"),
            "invalid character ']' looking for beginning of value"
        );
        assert_eq!(err("[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            err("tru "),
            "invalid character ' ' in literal true (expecting 'e')"
        );
        assert_eq!(err("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(err("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(
            err("x"),
            "invalid character 'x' looking for beginning of value"
        );
    }

    #[test]
    fn first_value_only() {
        assert_eq!(
            decode_first(b"{\"a\":1}x").expect("first value"),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            decode_first(b" 12 ").expect("number"),
            serde_json::json!(12)
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(&serde_json::json!(1.5), true), "number 1.5");
        assert_eq!(kind(&serde_json::json!(1.5), false), "number");
        assert_eq!(kind(&serde_json::json!("x"), true), "string");
    }
}
