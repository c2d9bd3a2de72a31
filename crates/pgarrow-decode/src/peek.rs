//! Looking ahead in a binary COPY stream without decoding it: how many dimensions the arrays of
//! some columns have.
//!
//! PostgreSQL does not enforce an array column's declared dimensions (`int[]` and `int[][]` are
//! one type; views and `CREATE TABLE AS` declare none), so the depth of the nested Lists an
//! array column becomes is taken from its first non-empty value. [`ArrayDepths`] finds it in
//! the stream's first rows, which the caller keeps and decodes afterwards with the plans it
//! settled.
//!
//! ```
//! use pgarrow_decode::ArrayDepths;
//!
//! // COPY (SELECT '{{1,2},{3,4}}'::int[]) TO STDOUT (FORMAT binary), first row only.
//! let mut stream = b"PGCOPY\n\xff\r\n\0".to_vec();
//! stream.extend([0; 8]); // flags, header extension length
//! let mut array = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23]; // ndim 2, flags, int4
//! array.extend([0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1]); // 2 x 2, lower bounds 1
//! for v in 1..=4i32 {
//!     array.extend(4i32.to_be_bytes());
//!     array.extend(v.to_be_bytes());
//! }
//! stream.extend(1i16.to_be_bytes());
//! stream.extend((array.len() as i32).to_be_bytes());
//! stream.extend(&array);
//!
//! let mut depths = ArrayDepths::new(vec![0]);
//! assert!(depths.scan(&stream)); // every column found
//! assert_eq!(depths.depth(0), Some(2));
//! assert_eq!(depths.rows(), 1);
//! ```

use crate::SIGNATURE;

/// The dimensions of the first non-empty array value of some columns, found by scanning whole
/// rows of a binary COPY stream.
#[derive(Debug, Clone)]
pub struct ArrayDepths {
    /// Column index and its depth, once seen.
    columns: Vec<(usize, Option<usize>)>,
    /// Where the next row starts in the stream (0: the header is still to come).
    pos: usize,
    /// Each row carries an OID field first (header flag bit 16).
    oids: bool,
    rows: u64,
    /// The trailer was seen, or the stream does not parse (the decoder will say why).
    ended: bool,
}

impl ArrayDepths {
    /// Looks for the depths of the arrays of `columns` (indices into each row's fields).
    pub fn new(columns: Vec<usize>) -> Self {
        ArrayDepths {
            columns: columns.into_iter().map(|c| (c, None)).collect(),
            pos: 0,
            oids: false,
            rows: 0,
            ended: false,
        }
    }

    /// Scans the whole rows of `stream` (the COPY data from its first byte: each call passes
    /// the same bytes, with more at the end) that earlier calls did not. Returns `true` once
    /// there is nothing more to learn: every column's depth is known, or the stream ended or
    /// does not parse.
    pub fn scan(&mut self, stream: &[u8]) -> bool {
        if self.pos == 0 && !self.header(stream) {
            return self.done();
        }
        while !self.done() {
            match self.row(stream) {
                Some(end) => {
                    self.pos = end;
                    self.rows += 1;
                }
                None => break,
            }
        }
        self.done()
    }

    /// The depth of column `column`'s first non-empty value, if one was seen.
    pub fn depth(&self, column: usize) -> Option<usize> {
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .and_then(|(_, d)| *d)
    }

    /// Rows scanned.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn done(&self) -> bool {
        self.ended || self.columns.iter().all(|(_, d)| d.is_some())
    }

    /// Reads the header; `false` when it is not all there (or is not a COPY header).
    fn header(&mut self, stream: &[u8]) -> bool {
        let Some(fixed) = stream.get(..SIGNATURE.len() + 8) else {
            return false;
        };
        if &fixed[..SIGNATURE.len()] != SIGNATURE {
            self.ended = true;
            return false;
        }
        let flags = i32::from_be_bytes(fixed[11..15].try_into().unwrap_or_default());
        let ext = i32::from_be_bytes(fixed[15..19].try_into().unwrap_or_default());
        let Ok(ext) = usize::try_from(ext) else {
            self.ended = true;
            return false;
        };
        let end = 19 + ext;
        if stream.len() < end {
            return false;
        }
        self.oids = flags & (1 << 16) != 0;
        self.pos = end;
        true
    }

    /// The end of the row at `self.pos`, recording depths, or `None` when it is not all there
    /// (or is the trailer, or does not parse: then the scan has ended).
    fn row(&mut self, stream: &[u8]) -> Option<usize> {
        let mut p = self.pos;
        let count = i16::from_be_bytes(stream.get(p..p + 2)?.try_into().ok()?);
        p += 2;
        if count < 0 {
            self.ended = true;
            return None;
        }
        let fields = count as usize + usize::from(self.oids);
        let mut found: Vec<(usize, usize)> = Vec::new();
        for field in 0..fields {
            let len = i32::from_be_bytes(stream.get(p..p + 4)?.try_into().ok()?);
            p += 4;
            if len == -1 {
                continue;
            }
            let Ok(len) = usize::try_from(len) else {
                self.ended = true;
                return None;
            };
            let value = stream.get(p..p + len)?;
            p += len;
            let column = field.wrapping_sub(usize::from(self.oids));
            if let Some(ndim) = value.get(..4) {
                let ndim = i32::from_be_bytes(ndim.try_into().ok()?);
                if (1..=6).contains(&ndim) {
                    found.push((column, ndim as usize));
                }
            }
        }
        // Only a whole row counts: a cut-off one is scanned again with more bytes.
        for (column, ndim) in found {
            if let Some((_, d @ None)) = self.columns.iter_mut().find(|(c, _)| *c == column) {
                *d = Some(ndim);
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend([0; 8]);
        for row in rows {
            s.extend((row.len() as i16).to_be_bytes());
            for f in row {
                match f {
                    Some(v) => {
                        s.extend((v.len() as i32).to_be_bytes());
                        s.extend(v);
                    }
                    None => s.extend((-1i32).to_be_bytes()),
                }
            }
        }
        s.extend((-1i16).to_be_bytes());
        s
    }

    fn array(ndim: i32) -> Vec<u8> {
        let mut a = ndim.to_be_bytes().to_vec();
        a.extend([0, 0, 0, 0, 0, 0, 0, 23]);
        for _ in 0..ndim {
            a.extend([0, 0, 0, 1, 0, 0, 0, 1]);
        }
        a.extend(4i32.to_be_bytes());
        a.extend(7i32.to_be_bytes());
        a
    }

    #[test]
    fn nulls_and_empty_arrays_wait_for_a_value_split_anywhere() {
        let s = stream(&[
            vec![Some(vec![0, 0, 0, 1]), None, Some(array(0)[..12].to_vec())],
            vec![Some(vec![0, 0, 0, 2]), Some(array(3)), None],
            vec![Some(vec![0, 0, 0, 3]), Some(array(1)), Some(array(2))],
        ]);
        for cut in 0..=s.len() {
            let mut d = ArrayDepths::new(vec![1, 2]);
            let early = d.scan(&s[..cut]);
            let done = d.scan(&s);
            assert!(done, "cut {cut}");
            assert_eq!((d.depth(1), d.depth(2)), (Some(3), Some(2)), "cut {cut}");
            assert_eq!(d.rows(), 3, "cut {cut}");
            if early {
                assert!(cut >= s.len() - 2, "done early at {cut}");
            }
        }
    }

    #[test]
    fn the_trailer_or_garbage_ends_the_scan() {
        let s = stream(&[vec![None]]);
        let mut d = ArrayDepths::new(vec![0]);
        assert!(d.scan(&s));
        assert_eq!(d.depth(0), None);
        let mut d = ArrayDepths::new(vec![0]);
        assert!(d.scan(b"not a COPY stream at all"));
        let mut bad = SIGNATURE.to_vec();
        bad.extend([0; 8]);
        bad.extend(1i16.to_be_bytes());
        bad.extend((-7i32).to_be_bytes());
        let mut d = ArrayDepths::new(vec![0]);
        assert!(d.scan(&bad));
        assert_eq!(d.rows(), 0);
    }
}
