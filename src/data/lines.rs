//! Line numbers as a text editor shows them, for LF, CRLF and old-Mac CR files alike.

/// Where each line of a file starts, so a byte offset maps to its 1-based line.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    /// Byte offset of the first byte of every line after the first.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        // memchr jumps between line breaks instead of looking at every byte: this runs on one
        // core over each block of a large file before its parts are parsed on all of them.
        let starts = memchr::memchr2_iter(b'\n', b'\r', bytes)
            // A CR ends a line unless an LF follows (then the LF ends it, once).
            .filter(|&index| bytes[index] == b'\n' || bytes.get(index + 1) != Some(&b'\n'))
            .map(|index| index + 1)
            .collect();
        Self { starts }
    }

    /// How many line breaks the indexed bytes hold.
    pub(crate) fn breaks(&self) -> u64 {
        self.starts.len() as u64
    }

    /// The 1-based line holding the byte at `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> u64 {
        1 + self.starts.partition_point(|&start| start <= offset) as u64
    }
}

/// Line breaks in `text` counted as [`LineIndex`] counts them (CRLF once).
pub(crate) fn count_line_breaks(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => count += 1,
            b'\r' if bytes.get(index + 1) != Some(&b'\n') => count += 1,
            _ => {}
        }
    }
    count
}

/// The first byte at or after `offset` that is not a line break: where a record really starts
/// (the CSV reader reports a CRLF record's start at the LF that ended the previous one).
pub(crate) fn skip_line_breaks(bytes: &[u8], mut offset: usize) -> usize {
    while offset < bytes.len() && matches!(bytes[offset], b'\r' | b'\n') {
        offset += 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_lf_crlf_and_cr() {
        for text in ["a\nb\nc", "a\r\nb\r\nc", "a\rb\rc"] {
            let index = LineIndex::new(text.as_bytes());
            let c = text.find('c').unwrap();
            let b = text.find('b').unwrap();
            assert_eq!(index.line_of(0), 1, "{text:?}");
            assert_eq!(index.line_of(b), 2, "{text:?}");
            assert_eq!(index.line_of(c), 3, "{text:?}");
        }
        assert_eq!(count_line_breaks("x\r\ny\nz\rw"), 3);
        assert_eq!(skip_line_breaks(b"\n\r\nab", 0), 3);
    }
}
