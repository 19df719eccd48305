//! The sans-IO protocol core (issue 5).
