//! Value vectors that come back for the next batch.
//!
//! A column's values live in a `Vec<T>` that becomes an Arrow buffer without a copy at flush.
//! Freed the usual way, that memory goes back to the allocator on whatever thread drops the
//! batch (the Parquet writer's), and the decoder's next batch asks for as much again: the
//! allocator returns the old pages to the kernel and faults in fresh zeroed ones, about one
//! fault per 4 KiB of COPY stream (for a 2M-row lineitem to Parquet: 122k minor faults and
//! 0.3 s of system time, a tenth of the client's CPU).
//!
//! A [`Recycler`] keeps the vector instead: the buffer handed to Arrow owns it through
//! [`Returned`], whose `drop` (when the last array using the buffer goes) puts it in the
//! column's spares, and the column's next batch starts from a spare. Memory stays bounded: a
//! column keeps at most [`SPARES`] vectors, and only a dropped batch makes one, so a column never
//! holds more than it had in flight at its busiest. A consumer that keeps its batches simply
//! never returns them.

use std::panic::RefUnwindSafe;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

use arrow_buffer::{ArrowNativeType, Buffer};

/// Vectors a column keeps for later batches: enough for a pipeline with a batch being written,
/// one waiting and one being decoded; more would only hold memory.
const SPARES: usize = 2;

type Spares<T> = Mutex<Vec<Vec<T>>>;

/// One column's returned vectors.
#[derive(Debug)]
pub(crate) struct Recycler<T> {
    spares: Arc<Spares<T>>,
}

impl<T: ArrowNativeType + RefUnwindSafe> Recycler<T> {
    pub(crate) fn new() -> Self {
        Recycler {
            spares: Arc::new(Mutex::new(Vec::with_capacity(SPARES))),
        }
    }

    /// An empty vector with room for `capacity` values: a returned one when there is one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        let spare = self.spares.lock().ok().and_then(|mut s| s.pop());
        match spare {
            Some(mut v) => {
                v.clear();
                v.reserve(capacity);
                v
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// An Arrow buffer of `values` that gives the vector back to this recycler once the last
    /// array using it is dropped (or frees it, when the recycler is gone or has enough).
    pub(crate) fn buffer(&self, values: Vec<T>) -> Buffer {
        if values.capacity() == 0 {
            return Buffer::from_vec(values);
        }
        let len = std::mem::size_of_val(values.as_slice());
        let ptr = NonNull::from(values.as_slice()).cast::<u8>();
        let owner = Arc::new(Returned {
            values,
            home: Arc::downgrade(&self.spares),
        });
        // SAFETY: `ptr` points to the vector's `len` initialised bytes (its values, of an Arrow
        // native type: no padding). The vector lives in `owner`, which the buffer keeps alive
        // (it is the buffer's deallocation) and nothing else can reach: it is not read, moved
        // out of or changed until `Returned::drop` runs, after the last reference to the buffer
        // is gone. Moving the vector into the `Arc` did not move its heap allocation, which
        // `ptr` points into, and its alignment is `T`'s, as with `Buffer::from_vec`. Exercised
        // by every decode test; `recycle`'s tests check the bytes after the buffer moved
        // threads and after the vector came back.
        #[allow(unsafe_code)]
        unsafe {
            Buffer::from_custom_allocation(ptr, len, owner)
        }
    }
}

/// The owner of a vector lent to Arrow, which hands it back when dropped.
struct Returned<T> {
    values: Vec<T>,
    home: Weak<Spares<T>>,
}

impl<T> Drop for Returned<T> {
    fn drop(&mut self) {
        // `Recycler::buffer` lends only vectors with an allocation.
        if let Some(home) = self.home.upgrade()
            && let Ok(mut spares) = home.lock()
            && spares.len() < SPARES
        {
            spares.push(std::mem::take(&mut self.values));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_buffer::ScalarBuffer;

    #[test]
    fn a_dropped_buffer_comes_back_with_its_memory() {
        let r = Recycler::<i64>::new();
        let mut v = r.take(1000);
        v.extend(0..1000);
        let ptr = v.as_ptr();
        let buffer = r.buffer(v);
        let values = ScalarBuffer::<i64>::new(buffer, 0, 1000);
        assert_eq!(values.iter().sum::<i64>(), 999 * 1000 / 2);
        // Still in use: nothing to take yet, so a fresh vector.
        let fresh = r.take(10);
        assert_ne!(fresh.as_ptr(), ptr);
        drop(values);
        let back = r.take(1000);
        assert_eq!(back.as_ptr(), ptr, "the same allocation came back");
        assert!(back.is_empty() && back.capacity() >= 1000);
    }

    #[test]
    fn buffers_dropped_on_another_thread_come_back_intact() {
        let r = Recycler::<i32>::new();
        let mut v = r.take(4);
        v.extend([1, -2, 3, i32::MAX]);
        let buffer = r.buffer(v);
        let sum = std::thread::spawn(move || {
            let values = ScalarBuffer::<i32>::new(buffer, 0, 4);
            values.iter().map(|&x| i64::from(x)).sum::<i64>()
        })
        .join()
        .unwrap();
        assert_eq!(sum, 2 + i64::from(i32::MAX));
        assert!(r.take(4).capacity() >= 4);
        assert_eq!(r.spares.lock().unwrap().len(), 0, "the spare was taken");
    }

    #[test]
    fn spares_are_bounded_and_outlive_nothing() {
        let r = Recycler::<u8>::new();
        let buffers: Vec<Buffer> = (0..5)
            .map(|i| {
                let mut v = r.take(8);
                v.push(i);
                r.buffer(v)
            })
            .collect();
        assert_eq!(buffers[3].as_slice(), &[3]);
        drop(buffers);
        assert_eq!(r.spares.lock().unwrap().len(), SPARES);
        // A buffer that outlives its recycler frees its vector itself.
        let mut v = r.take(8);
        v.push(42);
        let buffer = r.buffer(v);
        drop(r);
        assert_eq!(buffer.as_slice(), &[42]);
    }

    #[test]
    fn empty_vectors_need_no_owner() {
        let r = Recycler::<i64>::new();
        assert!(r.buffer(Vec::new()).is_empty());
        assert!(r.buffer(r.take(0)).is_empty());
    }
}
