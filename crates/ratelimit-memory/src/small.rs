//! A short list kept inline: the per-charge scratch of a batch without a heap allocation for the
//! batches requests make (a few charges); a longer one moves to the heap.

use core::ops::{Deref, DerefMut};

/// Up to `N` items inline, more on the heap.
pub(crate) enum Small<T, const N: usize> {
    Inline(heapless::Vec<T, N>),
    Heap(Vec<T>),
}

impl<T, const N: usize> Small<T, N> {
    /// Room for `n` items: inline when they fit.
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n <= N {
            Self::Inline(heapless::Vec::new())
        } else {
            Self::Heap(Vec::with_capacity(n))
        }
    }

    pub(crate) fn push(&mut self, value: T) {
        match self {
            Self::Heap(v) => v.push(value),
            Self::Inline(v) => {
                if let Err(value) = v.push(value) {
                    let mut heap = Vec::with_capacity(N * 2);
                    heap.extend(core::mem::take(v));
                    heap.push(value);
                    *self = Self::Heap(heap);
                }
            }
        }
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        match self {
            Self::Inline(v) => v.truncate(len),
            Self::Heap(v) => v.truncate(len),
        }
    }
}

impl<T, const N: usize> Deref for Small<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Self::Inline(v) => v,
            Self::Heap(v) => v,
        }
    }
}

impl<T, const N: usize> DerefMut for Small<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Self::Inline(v) => v,
            Self::Heap(v) => v,
        }
    }
}

impl<T, const N: usize> FromIterator<T> for Small<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut out = Self::with_capacity(iter.size_hint().0);
        for item in iter {
            out.push(item);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_stay_inline_until_they_do_not_fit() {
        let mut s: Small<u32, 2> = Small::with_capacity(2);
        s.push(1);
        s.push(2);
        assert!(matches!(s, Small::Inline(_)));
        s.push(3);
        assert!(matches!(s, Small::Heap(_)));
        assert_eq!(&*s, &[1, 2, 3]);
        s.truncate(1);
        assert_eq!(&*s, &[1]);
        let collected: Small<u32, 4> = (0..3).collect();
        assert!(matches!(collected, Small::Inline(_)));
        assert_eq!(&*collected, &[0, 1, 2]);
        let long: Small<u32, 4> = (0..10).collect();
        assert_eq!(long.len(), 10);
    }
}
