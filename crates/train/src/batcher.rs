//! Seeded shuffling over an in-memory data set: each epoch visits every example once in
//! the order of a Fisher–Yates permutation drawn from the ChaCha8 stream (seed, epoch).

use crate::rng::derive_rng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Where the batcher stands (checkpointed in `state.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatcherState {
    pub epoch: u64,
    /// Position inside the current epoch's permutation.
    pub cursor: usize,
}

pub struct Batcher {
    n: usize,
    seed: u64,
    state: BatcherState,
    perm: Vec<u32>,
}

impl Batcher {
    /// Batcher over `n >= 1` examples, starting at epoch 0.
    pub fn new(n: usize, seed: u64) -> Self {
        Self::from_state(n, seed, BatcherState { epoch: 0, cursor: 0 })
    }

    /// Continue from a saved state. A cursor beyond `n` is clamped (starts the next epoch).
    pub fn from_state(n: usize, seed: u64, state: BatcherState) -> Self {
        let cursor = state.cursor.min(n);
        Self {
            n,
            seed,
            state: BatcherState { epoch: state.epoch, cursor },
            perm: permutation(n, seed, state.epoch),
        }
    }

    pub fn state(&self) -> BatcherState {
        self.state
    }

    /// Fill `out` with the next `batch` example indices (crossing epoch boundaries as needed).
    pub fn next_batch(&mut self, batch: usize, out: &mut Vec<u32>) {
        out.clear();
        while out.len() < batch {
            if self.state.cursor >= self.n {
                self.state.epoch += 1;
                self.state.cursor = 0;
                self.perm = permutation(self.n, self.seed, self.state.epoch);
            }
            let take = (batch - out.len()).min(self.n - self.state.cursor);
            out.extend_from_slice(&self.perm[self.state.cursor..self.state.cursor + take]);
            self.state.cursor += take;
        }
    }
}

/// The permutation of 0..n used in `epoch` (Fisher–Yates / Durstenfeld).
pub fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut rng = derive_rng(seed, "data-order");
    rng.set_stream(epoch);
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_permutations_and_resume_exactly() {
        let mut b = Batcher::new(10, 3);
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..5 {
            b.next_batch(4, &mut buf);
            seen.extend_from_slice(&buf);
        }
        // 20 indices = two full epochs, each a permutation of 0..10
        for e in 0..2 {
            let mut ep = seen[e * 10..(e + 1) * 10].to_vec();
            ep.sort();
            assert_eq!(ep, (0..10).collect::<Vec<u32>>());
        }
        assert_ne!(seen[..10], seen[10..]);
        // resuming from a mid-run state reproduces the continuation
        let mut a = Batcher::new(10, 3);
        a.next_batch(4, &mut buf);
        a.next_batch(4, &mut buf);
        let mut r = Batcher::from_state(10, 3, a.state());
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            a.next_batch(4, &mut x);
            r.next_batch(4, &mut y);
            assert_eq!(x, y);
        }
        // batch larger than the data set
        let mut s = Batcher::new(3, 0);
        s.next_batch(7, &mut buf);
        assert_eq!(buf.len(), 7);
    }
}
