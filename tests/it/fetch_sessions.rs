//! Incremental fetch sessions (KIP-227) and KIP-951 leader hints, checked on the wire: session
//! ids and epochs, incremental responses with only the changed partitions, forgotten topics,
//! FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_TOPIC_ID_ERROR, the
//! cache slot limit, and `CurrentLeader` / `NodeEndpoints` for FENCED_LEADER_EPOCH.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, MetadataRequest};
use ringtail_protocol::record_batch::Compression;
use uuid::Uuid;

use crate::harness::{
    batch, create_topic, free_port, produce, topic_name, unique_topic, values, Broker, Client,
};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FENCED_LEADER_EPOCH: i16 = 74;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

/// A Fetch that waits for nothing, for `(partition, fetch offset, current leader epoch)`s of
/// `topic` (by name below v13, else by `topic_id`).
fn request(
    session_id: i32,
    epoch: i32,
    topic: &str,
    topic_id: Uuid,
    partitions: &[(i32, i64, i32)],
) -> FetchRequest {
    let mut topics = Vec::new();
    if !partitions.is_empty() {
        topics.push(
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_topic_id(topic_id)
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(partition, offset, leader_epoch)| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_current_leader_epoch(leader_epoch)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(4 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// (partition, has records) of every partition in the response, in order.
fn answered(response: &FetchResponse) -> Vec<(i32, bool)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            (
                p.partition_index,
                p.records.as_ref().is_some_and(|r| !r.is_empty()),
            )
        })
        .collect()
}

fn produce_one(client: &mut Client, topic: &str, partition: i32) {
    let (error, _) = produce(
        client,
        topic,
        partition,
        batch(&values(0, 1, 10), Compression::None),
    );
    assert_eq!(error, 0, "produce to {topic}-{partition}");
}

/// (topic id, leader epoch of partition 0) from Metadata v12.
fn topic_id_and_epoch(client: &mut Client, topic: &str) -> (Uuid, i32) {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
    ]));
    let response = client.call(&request, 12);
    let topic = &response.topics[0];
    (topic.topic_id, topic.partitions[0].leader_epoch)
}

#[test]
fn incremental_fetches_carry_only_changes() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-session");
    create_topic(&mut client, &topic, 3);
    for p in 0..3 {
        produce_one(&mut client, &topic, p);
    }
    let all = [(0, 0, -1), (1, 0, -1), (2, 0, -1)];

    // Full fetch, epoch 0: a new session; every partition is answered.
    let full = client.call(&request(0, 0, &topic, Uuid::nil(), &all), 12);
    assert_eq!(full.error_code, 0);
    let session = full.session_id;
    assert!(session > 0, "a session id, got {session}");
    assert_eq!(answered(&full), vec![(0, true), (1, true), (2, true)]);

    // Incremental, epoch 1, the new fetch offsets: nothing changed, nothing answered.
    let moved = [(0, 1, -1), (1, 1, -1), (2, 1, -1)];
    let quiet = client.call(&request(session, 1, &topic, Uuid::nil(), &moved), 12);
    assert_eq!((quiet.error_code, quiet.session_id), (0, session));
    assert_eq!(answered(&quiet), vec![]);

    // New records on partition 1 only: only partition 1 is answered, without the client
    // naming any partition (the session keeps the fetch offsets).
    produce_one(&mut client, &topic, 1);
    let changed = client.call(&request(session, 2, &topic, Uuid::nil(), &[]), 12);
    assert_eq!((changed.error_code, changed.session_id), (0, session));
    assert_eq!(answered(&changed), vec![(1, true)]);
    assert_eq!(changed.responses[0].partitions[0].high_watermark, 2);

    // The same epoch again (a duplicate): INVALID_FETCH_SESSION_EPOCH, session id 0.
    let stale = client.call(&request(session, 2, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(stale.error_code, INVALID_FETCH_SESSION_EPOCH);
    assert_eq!((stale.session_id, stale.responses.len()), (0, 0));
    // An unknown session: FETCH_SESSION_ID_NOT_FOUND.
    let unknown = client.call(&request(session ^ 1, 1, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);
    assert_eq!(unknown.session_id, 0);
    let no_session = client.call(&request(0, 1, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(no_session.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Forgetting partitions 0 and 2: the session survives with partition 1.
    let forget = |partitions: Vec<i32>| {
        ForgottenTopic::default()
            .with_topic(topic_name(&topic))
            .with_partitions(partitions)
    };
    let forgot = client.call(
        &request(session, 3, &topic, Uuid::nil(), &[(1, 2, -1)])
            .with_forgotten_topics_data(vec![forget(vec![0, 2])]),
        12,
    );
    assert_eq!((forgot.error_code, forgot.session_id), (0, session));
    assert_eq!(answered(&forgot), vec![]);
    produce_one(&mut client, &topic, 0);
    let only_one = client.call(&request(session, 4, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(answered(&only_one), vec![], "partition 0 was forgotten");
    // Forgetting the last partition closes the session: answered sessionless.
    let closed = client.call(
        &request(session, 5, &topic, Uuid::nil(), &[])
            .with_forgotten_topics_data(vec![forget(vec![1])]),
        12,
    );
    assert_eq!((closed.error_code, closed.session_id), (0, 0));
    let gone = client.call(&request(session, 6, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Epoch -1: sessionless, every partition answered, session id 0.
    let sessionless = client.call(&request(0, -1, &topic, Uuid::nil(), &all), 12);
    assert_eq!((sessionless.error_code, sessionless.session_id), (0, 0));
    assert_eq!(answered(&sessionless).len(), 3);
    // A full request naming a session closes it and opens a new one.
    let first = client
        .call(&request(0, 0, &topic, Uuid::nil(), &all), 12)
        .session_id;
    let second = client
        .call(&request(first, 0, &topic, Uuid::nil(), &all), 12)
        .session_id;
    assert!(second > 0 && second != first);
    let old = client.call(&request(first, 1, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(old.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn topic_id_sessions_and_slots() {
    let broker = Broker::start(&["max.incremental.fetch.session.cache.slots=1"]);
    let mut client = broker.client();
    let topic = unique_topic("it-session-ids");
    create_topic(&mut client, &topic, 2);
    produce_one(&mut client, &topic, 0);
    let (topic_id, _) = topic_id_and_epoch(&mut client, &topic);
    let both = [(0, 0, -1), (1, 0, -1)];
    let full = client.call(&request(0, 0, "", topic_id, &both), 16);
    assert_eq!(full.error_code, 0);
    assert!(full.session_id > 0);
    assert_eq!(answered(&full), vec![(0, true), (1, false)]);
    assert_eq!(full.responses[0].topic_id, topic_id);
    // The only slot is taken and the session is young: no second session.
    let mut other = broker.client();
    let refused = other.call(&request(0, 0, "", topic_id, &both), 16);
    assert_eq!((refused.error_code, refused.session_id), (0, 0));
    assert_eq!(answered(&refused).len(), 2);
    // Incremental by topic id, then a request below v13 on a topic-id session.
    produce_one(&mut client, &topic, 1);
    let incremental = client.call(
        &request(full.session_id, 1, "", topic_id, &[(0, 1, -1)]),
        16,
    );
    assert_eq!(incremental.error_code, 0);
    assert_eq!(answered(&incremental), vec![(1, true)]);
    let by_name = client.call(&request(full.session_id, 2, &topic, Uuid::nil(), &[]), 12);
    assert_eq!(by_name.error_code, FETCH_SESSION_TOPIC_ID_ERROR);
}

#[test]
fn no_slots_no_sessions() {
    let broker = Broker::start(&["max.incremental.fetch.session.cache.slots=0"]);
    let mut client = broker.client();
    let topic = unique_topic("it-session-none");
    create_topic(&mut client, &topic, 1);
    produce_one(&mut client, &topic, 0);
    let full = client.call(&request(0, 0, &topic, Uuid::nil(), &[(0, 0, -1)]), 12);
    assert_eq!((full.error_code, full.session_id), (0, 0));
    assert_eq!(answered(&full), vec![(0, true)]);
}

#[test]
fn fenced_leader_epoch_names_the_current_leader() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-leader-hint");
    create_topic(&mut client, &topic, 1);
    produce_one(&mut client, &topic, 0);
    // Each start bumps the leader epochs, so an epoch from before the restart is fenced.
    let (_, old_epoch) = topic_id_and_epoch(&mut client, &topic);
    broker.stop();
    broker.restart();
    let mut client = broker.client();
    let (topic_id, epoch) = topic_id_and_epoch(&mut client, &topic);
    assert!(epoch > old_epoch, "leader epoch {old_epoch} -> {epoch}");
    let fenced = client.call(&request(0, -1, "", topic_id, &[(0, 0, old_epoch)]), 16);
    let partition = &fenced.responses[0].partitions[0];
    assert_eq!(partition.error_code, FENCED_LEADER_EPOCH);
    assert_eq!(partition.current_leader.leader_id, BrokerId(0));
    assert_eq!(partition.current_leader.leader_epoch, epoch);
    assert_eq!(fenced.node_endpoints.len(), 1);
    let endpoint = &fenced.node_endpoints[0];
    assert_eq!(
        format!("{}:{}", endpoint.host, endpoint.port),
        broker.addr,
        "the advertised listener"
    );
    // Below v16 there are no hints.
    let old = client.call(&request(0, -1, "", topic_id, &[(0, 0, old_epoch)]), 15);
    let partition = &old.responses[0].partitions[0];
    assert_eq!(partition.error_code, FENCED_LEADER_EPOCH);
    assert_eq!(partition.current_leader.leader_id, BrokerId(-1));
    assert!(old.node_endpoints.is_empty());
    // The current epoch reads.
    let ok = client.call(&request(0, -1, "", topic_id, &[(0, 0, epoch)]), 16);
    assert_eq!(ok.responses[0].partitions[0].error_code, 0);
}

#[test]
fn leader_hints_name_the_clients_listener() {
    // Two listeners, the second advertised under another host name: the NodeEndpoints of a
    // FENCED_LEADER_EPOCH answer are those of the listener the client connected to (Kafka's
    // `KafkaApis` takes them from `request.context.listenerName`), as Metadata's are.
    let internal_port = free_port();
    let plaintext = format!("127.0.0.1:{}", free_port());
    let listeners =
        format!("listeners=PLAINTEXT://{plaintext},INTERNAL://127.0.0.1:{internal_port}");
    let advertised = format!(
        "advertised.listeners=PLAINTEXT://{plaintext},INTERNAL://localhost:{internal_port}"
    );
    let mut broker = Broker::start_at(
        plaintext.clone(),
        &[
            &listeners,
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            &advertised,
        ],
    );
    let mut client = broker.client();
    let topic = unique_topic("it-leader-hint-listener");
    create_topic(&mut client, &topic, 1);
    produce_one(&mut client, &topic, 0);
    let (_, old_epoch) = topic_id_and_epoch(&mut client, &topic);
    broker.stop();
    broker.restart();
    for (addr, expected) in [
        (plaintext.clone(), plaintext.clone()),
        (
            format!("127.0.0.1:{internal_port}"),
            format!("localhost:{internal_port}"),
        ),
    ] {
        let mut client = Client::connect(&addr).expect("connect");
        let (topic_id, _) = topic_id_and_epoch(&mut client, &topic);
        let fenced = client.call(&request(0, -1, "", topic_id, &[(0, 0, old_epoch)]), 16);
        assert_eq!(
            fenced.responses[0].partitions[0].error_code,
            FENCED_LEADER_EPOCH
        );
        assert_eq!(fenced.node_endpoints.len(), 1);
        let endpoint = &fenced.node_endpoints[0];
        assert_eq!(
            format!("{}:{}", endpoint.host, endpoint.port),
            expected,
            "the endpoint of the listener at {addr}"
        );
    }
}

#[test]
fn a_session_works_from_a_connection_on_another_shard() {
    // Connections spread over the shards (SO_REUSEPORT); a session is broker-wide, as on Kafka.
    let broker = Broker::start(&["ringtail.shards=2"]);
    let mut client = broker.client();
    let topic = unique_topic("it-session-shards");
    create_topic(&mut client, &topic, 4);
    for p in 0..4 {
        produce_one(&mut client, &topic, p);
    }
    let all = [(0, 1, -1), (1, 1, -1), (2, 1, -1), (3, 1, -1)];
    let full = client.call(&request(0, 0, &topic, Uuid::nil(), &all), 12);
    let session = full.session_id;
    assert!(session > 0);
    let mut epoch = 1;
    for round in 0..8 {
        let mut other = broker.client();
        produce_one(&mut other, &topic, round % 4);
        let answer = other.call(&request(session, epoch, &topic, Uuid::nil(), &[]), 12);
        assert_eq!(
            (answer.error_code, answer.session_id),
            (0, session),
            "round {round}"
        );
        assert_eq!(answered(&answer), vec![(round % 4, true)], "round {round}");
        epoch += 1;
        // The client moves its fetch offset past what it got.
        let offset = 2 + i64::from(round / 4);
        let moved = other.call(
            &request(
                session,
                epoch,
                &topic,
                Uuid::nil(),
                &[(round % 4, offset, -1)],
            ),
            12,
        );
        assert_eq!(
            (moved.error_code, answered(&moved)),
            (0, vec![]),
            "round {round}"
        );
        epoch += 1;
    }
    let log = broker.log_tail(400);
    assert!(
        log.contains("on shard 0") && log.contains("on shard 1"),
        "connections reached both shards"
    );
}
