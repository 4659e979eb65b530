//! Reusable buffers for the temporaries of training steps.
//!
//! Every minibatch step allocates the same temporaries: activations, deltas and gradients, a few MB.
//! Fresh allocations are zeroed (a memset) and, once the allocator has given the pages back to the
//! OS, page-faulted in again; in a VAE step that was 5-10% of the time (benches/NOTES.md entry 11). A
//! step takes its buffers with [`take`] and hands them back with [`recycle`], and the next step on
//! the same thread reuses them.
//!
//! A taken buffer holds stale values: take one only to overwrite every element (a GEMM with
//! `beta = 0`, a gather, an elementwise map). Results never depend on what a buffer held before.

use crate::real::Real;

/// Buffers kept per thread and type; beyond this, recycled buffers are freed.
const MAX_BUFFERS: usize = 48;
/// Bytes kept per thread and type (the VAE and RBM steps of the benchmarks need 5-10 MB).
const MAX_BYTES: usize = 64 << 20;

/// A buffer of `len` elements with unspecified (stale, but initialised) contents: a recycled buffer
/// of exactly that length if there is one, else the smallest large enough, else a new one.
pub fn take<T: Real>(len: usize) -> Vec<T> {
    let reused = T::with_scratch_pool(|pool| {
        let exact = pool.iter().position(|b| b.len() == len);
        let fit = || pool.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i);
        exact.or_else(fit).map(|i| pool.swap_remove(i))
    })
    .flatten();
    match reused {
        Some(mut buf) => {
            // Shortening writes nothing; lengthening (within the capacity) writes only the new tail.
            buf.resize(len, T::zero());
            buf
        }
        None => vec![T::zero(); len],
    }
}

/// Gives `buf` back for reuse by a later [`take`] on this thread (or frees it if the pool is full).
pub fn recycle<T: Real>(buf: Vec<T>) {
    if buf.capacity() == 0 {
        return;
    }
    T::with_scratch_pool(move |pool| {
        let kept: usize = pool.iter().map(|b| b.capacity()).sum();
        if pool.len() < MAX_BUFFERS && (kept + buf.capacity()) * std::mem::size_of::<T>() <= MAX_BYTES {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_length_then_by_capacity() {
        std::thread::spawn(|| {
            let a: Vec<f32> = take(1000);
            let (pa, ca) = (a.as_ptr(), a.capacity());
            recycle(a);
            let b: Vec<f32> = take(1000);
            assert_eq!(b.as_ptr(), pa, "the same length reuses the buffer");
            recycle(b);
            let c: Vec<f32> = take(600);
            assert_eq!((c.as_ptr(), c.len(), c.capacity()), (pa, 600, ca), "a shorter request reuses a larger buffer");
            recycle(c);
            let d: Vec<f32> = take(900);
            assert_eq!((d.as_ptr(), d.len()), (pa, 900), "growing within the capacity keeps the buffer");
            let e: Vec<f32> = take(5000);
            assert_eq!(e.len(), 5000, "nothing large enough: a new buffer");
            let f: Vec<f64> = take(1000);
            assert_ne!(f.as_ptr() as usize, pa as usize, "each type has its own pool");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_pool_is_bounded() {
        std::thread::spawn(|| {
            for _ in 0..2 * MAX_BUFFERS {
                recycle(vec![0.0f32; 16]);
            }
            let count = f32::with_scratch_pool(|p| p.len()).unwrap();
            assert_eq!(count, MAX_BUFFERS);
            recycle(vec![0.0f64; MAX_BYTES / 8 + 1]);
            assert_eq!(f64::with_scratch_pool(|p| p.len()).unwrap(), 0, "a buffer over the byte budget is freed");
        })
        .join()
        .unwrap();
    }
}
