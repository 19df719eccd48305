//! Writes one valid sealed datagram per suite into the directory given, as AFL++'s seeds.
use codec::fuzz::{hop_keys, TAG};
use codec::*;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "in".into());
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    for suite in Suite::ALL {
        let mut s = Sealer::new(suite, TAG, 1, 5, hop_keys(suite), &mut rand::thread_rng()).expect("fixture keys");
        let mut p = Packet::new(suite, DEFAULT_MTU).expect("mtu");
        p.push(&Message::Ping { seq: 1 }).expect("encode");
        p.push(&Message::Rumor(Rumor { origin: 1, seq: 2, timestamp_ms: 1_790_000_000_000, payload: vec![7; 64].into(), signature: None })).expect("encode");
        let d = s.seal(1_790_000_000_000, p).expect("seal");
        std::fs::write(format!("{dir}/{}.bin", suite.name().replace('+', "-")), &d).expect("write seed");
    }
}
