//! Byte- and token-level mutations of corpus inputs.
//!
//! No coverage feedback: every case starts from a corpus file and stacks a few mutations on it.
//! The mutations aim at what breaks parsers of text formats: flipped bits, cut and repeated
//! ranges, two files spliced, numbers swapped for extreme ones (`1e308`, `NaN`,
//! `18446744073709551616`, `9999999999999d`), keys written twice, document separators, invalid
//! UTF-8, very long lines and deep nesting.

use crate::rng::Rng;

/// Values that replace a number (or a field) of an input.
pub const EXTREME_VALUES: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "0.0",
    "-0.0",
    "1e308",
    "-1e308",
    "1e309",
    "1.7976931348623157e308",
    "2.2250738585072014e-308",
    "1e-320",
    "5e-324",
    "NaN",
    "nan",
    ".nan",
    ".NaN",
    "inf",
    "-inf",
    ".inf",
    "-.inf",
    "Infinity",
    "4294967295",
    "4294967296",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "123456789012345678901234567890123456789012345678901234567890",
    "1e999999999",
    "0.1e-999999999",
    "0x7fffffff",
    "0o777",
    "0b101",
    "1_000_000",
    "+1",
    "1.",
    "-.5",
    "00012",
    "9999999999999d",
    "99999999999999999999s",
    "36500d",
    "36501d",
    "0s",
    "-5m",
    "1.5h",
    "1ns",
    "18446744073709551616ms",
    "~",
    "null",
    "true",
    "\"\"",
    "''",
];

/// Byte sequences that are not UTF-8 (or are, but trouble: NUL, a byte order mark).
const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\x80",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\r",
];

/// What a long line is made of.
const LONG_LINE_UNITS: &[&str] = &[
    "a", "9", "-", " ", "\t", "[", "{", "0,", "x: ", "é", "\\", "\"", "'", "#", ",", "- ", "&a ",
    "*a ", "1e308,", "🦀",
];

/// Openers for deep nesting.
const NESTING_UNITS: &[&str] = &["[", "{", "{a: ", "- ", "[{", "{\"a\":", "  "];

/// Document separators and markers.
const SEPARATORS: &[&str] = &[
    "---\n",
    "...\n",
    "--- !!map\n",
    "---\n---\n",
    "%YAML 1.2\n---\n",
    "%TAG ! tag:x,2000:\n---\n",
];

/// One mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    BitFlip,
    SetByte,
    InsertRandomBytes,
    DeleteRange,
    DuplicateRange,
    OverwriteRange,
    Splice,
    InsertFromOther,
    ReplaceNumber,
    ReplaceField,
    InsertToken,
    ReplaceWord,
    DuplicateLine,
    DeleteLine,
    SwapLines,
    DuplicateKey,
    DocumentSeparator,
    InvalidUtf8,
    LongLine,
    DeepNesting,
    Truncate,
}

const OPS: &[Op] = &[
    Op::BitFlip,
    Op::SetByte,
    Op::InsertRandomBytes,
    Op::DeleteRange,
    Op::DuplicateRange,
    Op::OverwriteRange,
    Op::Splice,
    Op::InsertFromOther,
    Op::ReplaceNumber,
    Op::ReplaceNumber,
    Op::ReplaceNumber,
    Op::ReplaceField,
    Op::ReplaceField,
    Op::InsertToken,
    Op::InsertToken,
    Op::ReplaceWord,
    Op::ReplaceWord,
    Op::DuplicateLine,
    Op::DeleteLine,
    Op::SwapLines,
    Op::DuplicateKey,
    Op::DuplicateKey,
    Op::DocumentSeparator,
    Op::InvalidUtf8,
    Op::LongLine,
    Op::DeepNesting,
    Op::Truncate,
];

/// Makes new inputs from a corpus.
#[derive(Debug, Clone)]
pub struct Mutator {
    corpus: Vec<Vec<u8>>,
    /// Tokens of the format (keys, keywords, punctuation) and words found in the corpus.
    words: Vec<Vec<u8>>,
    max_len: usize,
}

impl Mutator {
    /// A mutator over `corpus` (at least one input), with the format's own `tokens`; inputs are
    /// cut to `max_len` bytes.
    pub fn new(corpus: Vec<Vec<u8>>, tokens: &[&str], max_len: usize) -> Mutator {
        assert!(!corpus.is_empty(), "a mutator needs at least one input");
        let mut words: Vec<Vec<u8>> = tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
        for input in &corpus {
            words.extend(identifiers(input));
        }
        words.sort();
        words.dedup();
        Mutator {
            corpus,
            words,
            max_len,
        }
    }

    /// A new input for the case whose generator is `rng`: a corpus input with 1 to 16 stacked
    /// mutations (mostly few).
    pub fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.corpus).clone();
        let rounds = rng.size(16);
        for _ in 0..rounds {
            let op = *rng.pick(OPS);
            self.apply(op, &mut data, rng);
            if data.len() > self.max_len {
                data.truncate(self.max_len);
            }
        }
        data
    }

    fn other<'a>(&'a self, rng: &mut Rng) -> &'a [u8] {
        rng.pick::<Vec<u8>>(&self.corpus)
    }

    fn apply(&self, op: Op, data: &mut Vec<u8>, rng: &mut Rng) {
        let len = data.len();
        match op {
            Op::BitFlip => {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] ^= 1 << rng.below(8);
                }
            }
            Op::SetByte => {
                if len > 0 {
                    const INTERESTING: &[u8] =
                        b"\0\xff\x7f\x80\n\r\t :-,\"'{}[]#&*!|>%@`\\0119eE.+";
                    let i = rng.below(len);
                    data[i] = if rng.one_in(2) {
                        *rng.pick(INTERESTING)
                    } else {
                        rng.next_u64() as u8
                    };
                }
            }
            Op::InsertRandomBytes => {
                let n = rng.size(32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                insert(data, rng.below(len + 1), &bytes);
            }
            Op::DeleteRange => {
                if len > 0 {
                    let start = rng.below(len);
                    let n = rng.size(len - start);
                    data.drain(start..start + n);
                }
            }
            Op::DuplicateRange => {
                if len > 0 {
                    let start = rng.below(len);
                    let n = rng.size(len - start);
                    let range = data[start..start + n].to_vec();
                    let times = if rng.one_in(8) { rng.size(64) } else { 1 };
                    let times = times.min(self.max_len / range.len()).max(1);
                    let at = if rng.one_in(2) {
                        start + n
                    } else {
                        rng.below(len + 1)
                    };
                    insert(data, at, &range.repeat(times));
                }
            }
            Op::OverwriteRange => {
                if len > 1 {
                    let from = rng.below(len);
                    let to = rng.below(len);
                    let n = rng.size(len - from.max(to));
                    let range = data[from..from + n].to_vec();
                    data[to..to + n].copy_from_slice(&range);
                }
            }
            Op::Splice => {
                let other = self.other(rng);
                let cut = line_boundary(data, rng.below(len + 1), rng);
                let from = line_boundary(other, rng.below(other.len() + 1), rng);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            Op::InsertFromOther => {
                let other = self.other(rng);
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let n = rng.size(other.len() - start);
                    let at = line_boundary(data, rng.below(len + 1), rng);
                    insert(data, at, &other[start..start + n]);
                }
            }
            Op::ReplaceNumber => {
                let numbers = number_spans(data);
                if numbers.is_empty() {
                    let at = rng.below(len + 1);
                    insert(data, at, rng.pick(EXTREME_VALUES).as_bytes());
                } else {
                    let (start, end) = *rng.pick(&numbers);
                    let value = rng.pick(EXTREME_VALUES).as_bytes();
                    data.splice(start..end, value.iter().copied());
                }
            }
            Op::ReplaceField => {
                // The value of a `key: value` line, a CSV field or a JSON member's value.
                let fields = field_spans(data);
                if let Some(&(start, end)) = (!fields.is_empty()).then(|| rng.pick(&fields)) {
                    let value: Vec<u8> = if rng.one_in(2) {
                        rng.pick(EXTREME_VALUES).as_bytes().to_vec()
                    } else {
                        rng.pick(&self.words).clone()
                    };
                    data.splice(start..end, value);
                }
            }
            Op::InsertToken => {
                let word = rng.pick(&self.words).clone();
                let at = if rng.one_in(2) {
                    line_boundary(data, rng.below(len + 1), rng)
                } else {
                    rng.below(len + 1)
                };
                insert(data, at, &word);
            }
            Op::ReplaceWord => {
                let spans = word_spans(data);
                if !spans.is_empty() {
                    let (start, end) = *rng.pick(&spans);
                    let word = rng.pick(&self.words).clone();
                    data.splice(start..end, word);
                }
            }
            Op::DuplicateLine => {
                let lines = line_spans(data);
                if !lines.is_empty() {
                    let (start, end) = *rng.pick(&lines);
                    let line = data[start..end].to_vec();
                    let times = if rng.one_in(8) { rng.size(1000) } else { 1 };
                    let times = times.min(self.max_len / line.len().max(1)).max(1);
                    insert(data, end, &line.repeat(times));
                }
            }
            Op::DeleteLine => {
                let lines = line_spans(data);
                if !lines.is_empty() {
                    let (start, end) = *rng.pick(&lines);
                    data.drain(start..end);
                }
            }
            Op::SwapLines => {
                let lines = line_spans(data);
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    let (a, b) = (lines[a.min(b)], lines[a.max(b)]);
                    if a != b {
                        let mut out = data[..a.0].to_vec();
                        out.extend_from_slice(&data[b.0..b.1]);
                        out.extend_from_slice(&data[a.1..b.0]);
                        out.extend_from_slice(&data[a.0..a.1]);
                        out.extend_from_slice(&data[b.1..]);
                        *data = out;
                    }
                }
            }
            Op::DuplicateKey => duplicate_key(data, rng),
            Op::DocumentSeparator => {
                let at = line_boundary(data, rng.below(len + 1), rng);
                insert(data, at, rng.pick(SEPARATORS).as_bytes());
            }
            Op::InvalidUtf8 => {
                let at = rng.below(len + 1);
                let bytes: &[u8] = rng.pick::<&[u8]>(INVALID_UTF8);
                insert(data, at, bytes);
            }
            Op::LongLine => {
                let unit = rng.pick(LONG_LINE_UNITS).as_bytes();
                let n = rng.between(1_000, 65_536) / unit.len();
                let at = rng.below(len + 1);
                insert(data, at, &unit.repeat(n));
            }
            Op::DeepNesting => {
                let unit = rng.pick(NESTING_UNITS).as_bytes();
                let n = rng.size(4_000);
                let at = rng.below(len + 1);
                insert(data, at, &unit.repeat(n));
            }
            Op::Truncate => {
                if len > 0 {
                    data.truncate(rng.below(len));
                }
            }
        }
    }
}

fn insert(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let at = at.min(data.len());
    data.splice(at..at, bytes.iter().copied());
}

/// `at`, or (half the time) the start of the line holding `at`.
fn line_boundary(data: &[u8], at: usize, rng: &mut Rng) -> usize {
    let at = at.min(data.len());
    if rng.one_in(2) {
        at
    } else {
        data[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }
}

/// Each line as `start..end`, its newline included.
fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            spans.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        spans.push((start, data.len()));
    }
    spans
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Words (`[A-Za-z_][A-Za-z0-9_]*`) as spans.
fn word_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i].is_ascii_alphabetic() || data[i] == b'_' {
            let start = i;
            while i < data.len() && is_word_byte(data[i]) {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// The words of an input, for the dictionary.
fn identifiers(data: &[u8]) -> Vec<Vec<u8>> {
    word_spans(data)
        .into_iter()
        .filter(|(s, e)| e - s >= 2 && e - s <= 40)
        .map(|(s, e)| data[s..e].to_vec())
        .collect()
}

/// Numbers with an optional unit (`0.6`, `-1e-9`, `300`, `5m`, `2026`) as spans.
fn number_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let starts = data[i].is_ascii_digit()
            || (matches!(data[i], b'-' | b'+' | b'.')
                && data.get(i + 1).is_some_and(u8::is_ascii_digit));
        let glued = i > 0 && is_word_byte(data[i - 1]);
        if starts && !glued {
            let start = i;
            i += 1;
            while i < data.len()
                && (data[i].is_ascii_digit()
                    || matches!(data[i], b'.' | b'_' | b'e' | b'E')
                    || (matches!(data[i], b'-' | b'+') && matches!(data[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            while i < data.len() && data[i].is_ascii_alphabetic() && i - start < 40 {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Values of fields: after `: ` up to the end of the line (YAML, JSON) or between commas (CSV).
fn field_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (start, end) in line_spans(data) {
        let line = &data[start..end];
        let content_end = start
            + line
                .iter()
                .rposition(|&b| b != b'\n' && b != b'\r')
                .map_or(0, |i| i + 1);
        // `key: value` (YAML) and `"key": value` (JSON).
        if let Some(colon) = line.windows(2).position(|w| w == b": ") {
            let value_start = start + colon + 2;
            let value_end = data[value_start..content_end]
                .iter()
                .position(|&b| b == b',' || b == b'}' || b == b'#')
                .map_or(content_end, |i| value_start + i);
            if value_start < value_end {
                spans.push((value_start, value_end));
            }
        }
        // CSV fields.
        let mut field_start = start;
        for (i, &b) in data.iter().enumerate().take(content_end).skip(start) {
            if b == b',' {
                spans.push((field_start, i));
                field_start = i + 1;
            }
        }
        if field_start < content_end && field_start > start {
            spans.push((field_start, content_end));
        }
    }
    spans
}

/// Writes a key twice: a `key:` line of YAML again below itself (with a new value, half the
/// time), or a `"key": value` member of JSON again before itself.
fn duplicate_key(data: &mut Vec<u8>, rng: &mut Rng) {
    // JSON: `"key":` after `{` or `,`.
    let json_keys: Vec<usize> = (0..data.len())
        .filter(|&i| {
            data[i] == b'"'
                && data[..i]
                    .iter()
                    .rev()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b'{' || b == b',')
        })
        .collect();
    if !json_keys.is_empty() && rng.one_in(2) {
        let start = *rng.pick(&json_keys);
        // The member: up to the next `,` or `}` outside strings and at this depth.
        let mut depth = 0i32;
        let mut in_string = false;
        let mut escaped = false;
        let mut end = data.len();
        for (i, &b) in data.iter().enumerate().skip(start) {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => {
                    end = i;
                    break;
                }
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let mut member = data[start..end].to_vec();
        if rng.one_in(2)
            && let Some(colon) = member.iter().position(|&b| b == b':')
        {
            member.truncate(colon + 1);
            member.extend_from_slice(rng.pick(EXTREME_VALUES).as_bytes());
        }
        member.push(b',');
        insert(data, start, &member);
        return;
    }
    // YAML: a line `  key: ...` (or `- key: ...`).
    let lines: Vec<(usize, usize)> = line_spans(data)
        .into_iter()
        .filter(|&(s, e)| {
            let line = &data[s..e];
            let trimmed: Vec<u8> = line
                .iter()
                .copied()
                .skip_while(|&b| b == b' ' || b == b'-')
                .collect();
            let key_len = trimmed.iter().take_while(|&&b| is_word_byte(b)).count();
            key_len > 0 && trimmed.get(key_len) == Some(&b':')
        })
        .collect();
    if lines.is_empty() {
        return;
    }
    let (start, end) = *rng.pick(&lines);
    let mut line = data[start..end].to_vec();
    // As a sibling: the list dash becomes indentation.
    if let Some(dash) = line.iter().position(|&b| b != b' ')
        && line[dash] == b'-'
    {
        line[dash] = b' ';
    }
    if rng.one_in(2)
        && let Some(colon) = line.iter().position(|&b| b == b':')
    {
        line.truncate(colon + 1);
        line.push(b' ');
        line.extend_from_slice(rng.pick(EXTREME_VALUES).as_bytes());
        line.push(b'\n');
    }
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    let at = if data[..end].ends_with(b"\n") {
        end
    } else {
        data.push(b'\n');
        end + 1
    };
    insert(data, at, &line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_find_numbers_fields_and_words() {
        let text = b"groups:\n  - min: 2\n    scale_in_cooldown: 5m\n    target: -1e-9\n";
        let numbers: Vec<&[u8]> = number_spans(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(numbers, [&b"2"[..], b"5m", b"-1e-9"]);
        let fields: Vec<&[u8]> = field_spans(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(fields, [&b"2"[..], b"5m", b"-1e-9"]);
        let csv = b"timestamp,value\n2024-01-01T00:00:00Z,1.5\n";
        let fields: Vec<&[u8]> = field_spans(csv)
            .into_iter()
            .map(|(s, e)| &csv[s..e])
            .collect();
        assert_eq!(
            fields,
            [&b"timestamp"[..], b"value", b"2024-01-01T00:00:00Z", b"1.5"]
        );
    }

    #[test]
    fn duplicate_keys_are_written_in_yaml_and_json() {
        let mut rng = Rng::new(3);
        let mut seen_yaml = false;
        let mut seen_json = false;
        for _ in 0..64 {
            let mut yaml = b"groups:\n  - min: 2\n    max: 5\n".to_vec();
            duplicate_key(&mut yaml, &mut rng);
            let text = String::from_utf8(yaml).unwrap();
            seen_yaml |= text.matches("min:").count() == 2 || text.matches("max:").count() == 2;
            let mut json = br#"{"group":"web","desired":3}"#.to_vec();
            duplicate_key(&mut json, &mut rng);
            let text = String::from_utf8(json).unwrap();
            seen_json |=
                text.matches("\"group\"").count() == 2 || text.matches("\"desired\"").count() == 2;
        }
        assert!(seen_yaml && seen_json);
    }

    #[test]
    fn generated_inputs_stay_within_the_length_limit() {
        let mutator = Mutator::new(
            vec![b"a: 1\n".to_vec(), b"{\"b\": 2}".to_vec()],
            &["x"],
            4096,
        );
        for case in 0..2_000 {
            let data = mutator.generate(&mut Rng::for_case(11, case));
            assert!(data.len() <= 4096);
        }
    }
}
