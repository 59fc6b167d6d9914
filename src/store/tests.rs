//! Tests of the store through its public API.
