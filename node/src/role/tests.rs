//! Unit tests of the role machine: the exact commands each state emits for each event.
