//! Transparent huge pages for this process and the processes it starts, on or off.
//!
//! Why off by default: mimalloc asks for THP on its arenas, and under THP mode `madvise` each
//! fresh 2 MiB region of a growing heap faults in at once, zeroed whole (`clear_page_erms`).
//! Thirty-two nodes growing together under a CPU quota stalled for 0.7–2 s that way and raised
//! false suspicions; the simulator's 10,000-member heap spent 29 % of its time there.
//! Reference: `prctl(2)` PR_SET_THP_DISABLE, and the kernel's admin-guide/mm/transhuge.rst.
//! Concurrency: process-wide, inherited across fork and execve; set it before the heap grows.

/// Turns transparent huge pages on or off for this process (and what it later starts). Off, the
/// heap grows in 4 KiB faults, each zeroed as it is first used.
pub fn set(on: bool) -> nix::Result<()> {
    nix::sys::prctl::set_thp_disable(!on)
}
