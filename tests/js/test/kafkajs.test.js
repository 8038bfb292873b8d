'use strict'
// KafkaJS 2.x against the real broker (see harness.js): admin createTopics and
// fetchTopicMetadata (and the other topic calls), the producer with keys, headers, timestamps
// and its built-in codecs, the idempotent producer, and a consumer group whose member leaves
// while the other takes over. One broker serves every test of this file.

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const assert = require('node:assert/strict')
const { before, after } = require('node:test')
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')
const { startBroker, brokerTest, clientLogCreator, ringtailOnly, uniqueName, waitFor, sleep } = require('../harness')

let broker = null
const getBroker = () => broker
/** Clients to disconnect after each test file (producers, consumers, admins). */
const clients = []

before(async () => { broker = await startBroker() }, { timeout: 200_000 })

after(async () => {
  await Promise.allSettled(clients.map(client => client.disconnect()))
  if (broker) await broker.stop()
}, { timeout: 120_000 })

function kafka (clientId = 'ringtail-js-tests') {
  return new Kafka({ clientId, brokers: [broker.addr], logLevel: logLevel.INFO, logCreator: clientLogCreator })
}

async function connected (client) {
  clients.push(client)
  await client.connect()
  return client
}

async function createTopic (admin, topic, numPartitions) {
  const created = await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: false })
  assert.equal(created, true, `createTopics(${topic}) should report a new topic`)
  await waitForLeaders(admin, [topic])
}

/**
 * Waits until Metadata shows every partition of topics with a leader. KafkaJS's own
 * waitForLeaders retries LEADER_NOT_AVAILABLE only, but a KRaft broker may answer
 * UNKNOWN_TOPIC_OR_PARTITION until the new topic's metadata reaches it.
 */
async function waitForLeaders (admin, topics) {
  let last = null
  await waitFor(20_000, async () => {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics })
      last = metadata
      return metadata.topics.every(topic => topic.partitions.length > 0 && topic.partitions.every(p => p.leader >= 0))
    } catch (error) {
      last = error
      if (error.type !== 'UNKNOWN_TOPIC_OR_PARTITION' && error.type !== 'LEADER_NOT_AVAILABLE') throw error
      return false
    }
  }, () => `topics ${topics} have no leaders: ${last}`)
}

/** n keyed messages with two headers and timestamps one second apart from base (ms). */
function testMessages (n, base, prefix = 'key') {
  return Array.from({ length: n }, (_, i) => ({
    key: `${prefix}-${String(i).padStart(4, '0')}`,
    value: `value ${i} of a compressible message; `.repeat(6),
    headers: { index: String(i), source: 'kafkajs' },
    timestamp: String(base + i * 1000)
  }))
}

/** Reads count messages of topic from the beginning through a new consumer group. */
async function readAll (topic, count, timeoutMs = 30_000) {
  const consumer = await connected(kafka().consumer({ groupId: uniqueName('js-read') }))
  const received = []
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({ eachMessage: async ({ partition, message }) => { received.push({ partition, message }) } })
  try {
    await waitFor(timeoutMs, () => received.length >= count, () => `read ${received.length} of ${count} messages`)
    await sleep(300) // a message read twice would arrive now
  } finally {
    await consumer.disconnect()
  }
  return received
}

brokerTest('admin: createTopics, fetchTopicMetadata, describeCluster, listTopics, fetchTopicOffsets, deleteTopics',
  getBroker, async () => {
    const admin = await connected(kafka().admin())
    const first = uniqueName('js-admin-a')
    const second = uniqueName('js-admin-b')
    assert.equal(await admin.createTopics({ topics: [{ topic: first, numPartitions: 3 }, { topic: second }], waitForLeaders: false }), true)
    await waitForLeaders(admin, [first, second])
    assert.equal(await admin.createTopics({ topics: [{ topic: first, numPartitions: 3 }], waitForLeaders: false }), false,
      'creating an existing topic resolves to false (TOPIC_ALREADY_EXISTS)')
    await assert.rejects(admin.createTopics({ topics: [{ topic: uniqueName('js-admin-bad'), numPartitions: 0 }], waitForLeaders: false }),
      error => /INVALID_PARTITIONS|Number of partitions/i.test(`${error.type} ${error.message} ${(error.errors || []).map(e => e.type).join(' ')}`),
      'zero partitions is INVALID_PARTITIONS')

    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1)
    const [node] = cluster.brokers
    assert.equal(`${node.host}:${node.port}`, broker.addr)
    assert.equal(cluster.controller, node.nodeId)
    assert.ok(cluster.clusterId, 'a cluster id')

    const { topics } = await admin.fetchTopicMetadata({ topics: [first, second] })
    const byName = Object.fromEntries(topics.map(topic => [topic.name, topic]))
    assert.equal(byName[first].partitions.length, 3)
    assert.equal(byName[second].partitions.length, 1, 'num.partitions defaults to 1')
    for (const partition of byName[first].partitions) {
      assert.equal(partition.partitionErrorCode, 0)
      assert.equal(partition.leader, node.nodeId)
      assert.deepEqual(partition.replicas, [node.nodeId])
      assert.deepEqual(partition.isr, [node.nodeId])
    }
    assert.deepEqual(byName[first].partitions.map(p => p.partitionId).sort(), [0, 1, 2])

    const listed = await admin.listTopics()
    assert.ok(listed.includes(first) && listed.includes(second), `listTopics has both: ${listed}`)

    const producer = await connected(kafka().producer())
    const base = Date.now() - 3_600_000
    await producer.send({ topic: first, messages: testMessages(5, base).map(m => ({ ...m, partition: 1 })) })
    const offsets = await admin.fetchTopicOffsets(first)
    offsets.sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(({ partition, offset, low, high }) => ({ partition, offset, low, high })), [
      { partition: 0, offset: '0', low: '0', high: '0' },
      { partition: 1, offset: '5', low: '0', high: '5' },
      { partition: 2, offset: '0', low: '0', high: '0' }
    ])
    const byTime = await admin.fetchTopicOffsetsByTimestamp(first, base + 2500)
    assert.equal(byTime.find(p => p.partition === 1).offset, '3', 'first offset with timestamp >= base+2.5 s')

    await admin.deleteTopics({ topics: [first, second] })
    await waitFor(20_000, async () => {
      const now = await admin.listTopics()
      return !now.includes(first) && !now.includes(second)
    }, () => 'deleted topics are still listed')
    await assert.rejects(admin.fetchTopicMetadata({ topics: [first] }),
      error => error.type === 'UNKNOWN_TOPIC_OR_PARTITION', 'metadata of a deleted topic')
  })

for (const [name, compression] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
  brokerTest(`producer (${name}): keys, values, headers, timestamps read back by a consumer`, getBroker, async () => {
    const admin = await connected(kafka().admin())
    const topic = uniqueName(`js-produce-${name}`)
    await createTopic(admin, topic, 3)
    const producer = await connected(kafka().producer())
    const base = Date.now() - 3_600_000
    const messages = testMessages(60, base)
    // One message alone, then the rest in one request (one batch per partition).
    const metadata = [
      ...await producer.send({ topic, compression, messages: messages.slice(0, 1) }),
      ...await producer.send({ topic, compression, messages: messages.slice(1) })
    ]
    for (const result of metadata) assert.equal(result.errorCode, 0)

    const received = await readAll(topic, messages.length)
    assert.equal(received.length, messages.length, 'each message read once')
    const byKey = new Map(messages.map(m => [m.key, m]))
    const nextOffset = {}
    for (const { partition, message } of received.sort((a, b) => a.partition - b.partition || Number(a.message.offset) - Number(b.message.offset))) {
      const want = byKey.get(message.key.toString())
      assert.ok(want, `unexpected key ${message.key}`)
      byKey.delete(want.key)
      assert.equal(message.value.toString(), want.value)
      assert.equal(message.timestamp, want.timestamp)
      assert.deepEqual(Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, v.toString()])), want.headers)
      assert.equal(message.offset, String(nextOffset[partition] || 0), `partition ${partition}: offsets dense from 0`)
      nextOffset[partition] = Number(message.offset) + 1
    }
    assert.equal(byKey.size, 0)
  })
}

brokerTest('idempotent producer (InitProducerId, sequence numbers) with acks=all', getBroker, async () => {
  const admin = await connected(kafka().admin())
  const topic = uniqueName('js-idempotent')
  await createTopic(admin, topic, 2)
  const producer = await connected(kafka().producer({ idempotent: true, maxInFlightRequests: 1 }))
  const messages = testMessages(40, Date.now())
  for (let i = 0; i < messages.length; i += 10) {
    await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 10) })
  }
  const offsets = await admin.fetchTopicOffsets(topic)
  assert.equal(offsets.reduce((sum, p) => sum + Number(p.high), 0), messages.length)
  const received = await readAll(topic, messages.length)
  assert.deepEqual(received.map(r => r.message.key.toString()).sort(), messages.map(m => m.key).sort())
})

/** A group member that records what it reads and its latest assignment. */
async function groupMember (name, groupId, topic) {
  const consumer = await connected(kafka(`js-${name}`).consumer({ groupId }))
  const member = { name, consumer, assignment: [], received: [] }
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    member.assignment = [...(payload.memberAssignment[topic] || [])].sort()
  })
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({ eachMessage: async ({ partition, message }) => { member.received.push({ partition, message }) } })
  return member
}

brokerTest('consumer group: two members share the partitions, one leaves, the other takes over; no committed record lost',
  getBroker, async () => {
    const partitions = 4
    const admin = await connected(kafka().admin())
    const topic = uniqueName('js-group')
    const groupId = uniqueName('js-group')
    await createTopic(admin, topic, partitions)
    const producer = await connected(kafka().producer())
    const produce = async prefix => {
      const messages = Array.from({ length: 40 }, (_, i) => ({ key: `${prefix}-${i}`, value: 'v', partition: i % partitions }))
      await producer.send({ topic, messages })
    }
    const first = await groupMember('first', groupId, topic)
    const second = await groupMember('second', groupId, topic)
    const describe = () => ['first', 'second'].map(n => {
      const m = n === 'first' ? first : second
      return `${n}: partitions [${m.assignment}], ${m.received.length} read`
    }).join('; ')
    await waitFor(60_000, () => first.assignment.length > 0 && second.assignment.length > 0 &&
      new Set([...first.assignment, ...second.assignment]).size === partitions &&
      first.assignment.length + second.assignment.length === partitions,
    () => `group not balanced: ${describe()}`)

    await produce('before')
    await waitFor(30_000, () => first.received.length + second.received.length >= 40,
      () => `records before the leave not all read: ${describe()}`)
    assert.ok(first.received.length > 0 && second.received.length > 0, `both members read: ${describe()}`)

    await first.consumer.disconnect() // commits, then LeaveGroup
    await waitFor(60_000, () => second.assignment.length === partitions,
      () => `second member did not take over: ${describe()}`)
    await produce('after')
    await waitFor(30_000, () => first.received.length + second.received.length >= 80,
      () => `records after the leave not all read: ${describe()}`)
    await sleep(500) // a record read twice would arrive now

    const seen = new Map()
    for (const member of [first, second]) {
      for (const { message } of member.received) {
        const key = message.key.toString()
        assert.ok(!seen.has(key), `${key} read twice (${seen.get(key)}, then ${member.name})`)
        seen.set(key, member.name)
      }
    }
    assert.equal(seen.size, 80)
    assert.ok(first.received.every(r => r.message.key.toString().startsWith('before')), 'first read nothing after it left')

    await second.consumer.disconnect()
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(committed.partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition),
      [0, 1, 2, 3].map(partition => ({ partition, offset: '20' })))
    const groups = await admin.describeGroups([groupId])
    assert.equal(groups.groups[0].state, 'Empty', 'after both left the group is Empty')
  })

brokerTest('producer auto-creates a topic (allowAutoTopicCreation, the default) with num.partitions', getBroker, async () => {
  const admin = await connected(kafka().admin())
  const topic = uniqueName('js-auto')
  const producer = await connected(kafka().producer())
  const [result] = await producer.send({ topic, messages: [{ value: 'first' }] })
  assert.equal(result.errorCode, 0)
  assert.equal(result.baseOffset, '0')
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(topics[0].partitions.length, 1)
})

brokerTest('admin: setOffsets, fetchOffsets, resetOffsets, listGroups, describeGroups, deleteGroups', getBroker, async () => {
  const admin = await connected(kafka().admin())
  const topic = uniqueName('js-offsets')
  const groupId = uniqueName('js-offsets')
  await createTopic(admin, topic, 2)
  const producer = await connected(kafka().producer())
  await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })) })

  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '3' }, { partition: 1, offset: '5' }] })
  const fetched = async () => {
    const [{ partitions }] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return partitions.sort((a, b) => a.partition - b.partition).map(p => p.offset)
  }
  assert.deepEqual(await fetched(), ['3', '5'])
  await admin.resetOffsets({ groupId, topic, earliest: true })
  assert.deepEqual(await fetched(), ['-2', '-2'], 'resetOffsets to earliest commits -2 (resolved by consumers)')
  await admin.fetchOffsets({ groupId, topics: [topic], resolveOffsets: true })
  assert.deepEqual(await fetched(), ['0', '0'])

  const { groups } = await admin.listGroups()
  assert.ok(groups.some(group => group.groupId === groupId), `listGroups has ${groupId}`)
  const described = await admin.describeGroups([groupId])
  assert.equal(described.groups[0].state, 'Empty')
  assert.deepEqual(described.groups[0].members, [])
  const [deleted] = await admin.deleteGroups([groupId])
  assert.equal(deleted.errorCode, 0)
  assert.deepEqual(await fetched(), ['-1', '-1'], 'no committed offsets after deleteGroups')
})

brokerTest('transactional producer: a read_committed consumer sees committed records only', getBroker, async () => {
  const admin = await connected(kafka().admin())
  const topic = uniqueName('js-txn')
  await createTopic(admin, topic, 1)
  const producer = await connected(kafka().producer({ transactionalId: uniqueName('js-txn'), idempotent: true, maxInFlightRequests: 1 }))
  for (const commit of [true, false, true]) {
    const transaction = await producer.transaction()
    await transaction.send({ topic, messages: [{ value: `committed=${commit}` }, { value: `committed=${commit}` }] })
    if (commit) await transaction.commit()
    else await transaction.abort()
  }
  const received = await readAll(topic, 4)
  assert.deepEqual(received.map(r => r.message.value.toString()), Array(4).fill('committed=true'))
})

brokerTest('the broker log shows no panic or abort', getBroker, async () => {
  const found = broker.panic()
  assert.equal(found, '', `panic in the broker log:\n${found}`)
}, ringtailOnly('checks Ringtail\'s log'))


