//! AFL++ target: any bytes through parse, freshness check, open and decode, under every suite.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        codec::fuzz::open_any(data);
    });
}
