//! PairClient (in progress).
