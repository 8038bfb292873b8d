//! Restart recovery: what was acknowledged with acks=-1 is there after a clean stop and after
//! SIGKILL, and the log continues at the same offset.

use ringtail_protocol::record_batch::Compression;

use crate::harness::{batch, create_topic, fetch, produce, unique_topic, values, Broker};
use crate::list_offsets::list_offset;

#[test]
fn acknowledged_records_survive_stop_and_kill() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("it-recovery");
    let mut produced = 0usize;
    {
        let mut client = broker.client();
        create_topic(&mut client, &topic, 1);
        for n in 0..4 {
            let (error, base) = produce(
                &mut client,
                &topic,
                0,
                batch(&values(n, 25, 300), Compression::Snappy),
            );
            assert_eq!((error, base), (0, produced as i64));
            produced += 25;
        }
    }
    broker.stop();
    broker.restart();
    let mut client = broker.client();
    let (error, high_watermark, records) = fetch(&mut client, &topic, 0, 0);
    assert_eq!(
        (error, high_watermark),
        (0, produced as i64),
        "after a clean stop"
    );
    assert_eq!(records.len(), produced);
    let (error, base) = produce(
        &mut client,
        &topic,
        0,
        batch(&values(9, 10, 50), Compression::None),
    );
    assert_eq!(
        (error, base),
        (0, produced as i64),
        "the log continues where it ended"
    );
    produced += 10;
    drop(client);
    broker.kill();
    broker.restart();
    let mut client = broker.client();
    let (error, high_watermark, records) = fetch(&mut client, &topic, 0, 0);
    assert_eq!(
        (error, high_watermark),
        (0, produced as i64),
        "after SIGKILL"
    );
    assert!(records.iter().enumerate().all(|(i, r)| r.0 == i as i64));
    assert_eq!(list_offset(&mut client, &topic, -1), (0, produced as i64));
}
