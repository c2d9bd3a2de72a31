//! Row positions of a data file (its deleted rows, a commit's deletes): a compressed bitmap, so
//! that a file with millions of deleted rows holds a few bytes per 65,536 rows rather than
//! eight per row.

use roaring::RoaringTreemap;

/// A set of row positions, iterated in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Positions(RoaringTreemap);

impl Positions {
    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, pos: u64) -> bool {
        self.0.contains(pos)
    }

    /// Adds `pos`; whether it was not there.
    pub(crate) fn insert(&mut self, pos: u64) -> bool {
        self.0.insert(pos)
    }

    /// The positions, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter()
    }

    /// Every position of `other` added.
    pub(crate) fn union_with(&mut self, other: &Positions) {
        self.0 |= &other.0;
    }

    /// The bitmap (what a Delta deletion vector serializes).
    pub(crate) fn bitmap(&self) -> &RoaringTreemap {
        &self.0
    }

    /// The memory it takes, about.
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        self.0.serialized_size()
    }
}

impl FromIterator<u64> for Positions {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        Positions(iter.into_iter().collect())
    }
}

impl Extend<u64> for Positions {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl From<RoaringTreemap> for Positions {
    fn from(map: RoaringTreemap) -> Self {
        Positions(map)
    }
}

impl From<Vec<u64>> for Positions {
    fn from(v: Vec<u64>) -> Self {
        v.into_iter().collect()
    }
}

#[cfg(test)]
impl PartialEq<Vec<u64>> for Positions {
    fn eq(&self, other: &Vec<u64>) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

#[cfg(test)]
impl<const N: usize> PartialEq<[u64; N]> for Positions {
    fn eq(&self, other: &[u64; N]) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_a_set_in_order_and_small() {
        let mut p: Positions = [9u64, 3, 3, 1 << 40].into_iter().collect();
        assert_eq!(p.len(), 3);
        assert!(p.insert(5) && !p.insert(5));
        assert_eq!(p.iter().collect::<Vec<_>>(), [3, 5, 9, 1 << 40]);
        assert!(p.contains(9) && !p.contains(4));
        p.union_with(&Positions::from(vec![4, 9]));
        assert_eq!(p.iter().collect::<Vec<_>>(), [3, 4, 5, 9, 1 << 40]);
        // Every fourth row of 32M: a bitmap of ~4 MiB, not 64 MiB of positions.
        let quarter: Positions = (0..32_000_000u64).step_by(4).collect();
        assert_eq!(quarter.len(), 8_000_000);
        assert!(quarter.memory() < 5 << 20, "{}", quarter.memory());
    }
}
