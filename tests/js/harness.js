'use strict'
// Starts the broker the KafkaJS tests talk to, on a free loopback port with a temporary
// directory:
//   - by default the real `ringtail` binary ($RINGTAIL_BIN, else
//     $CARGO_TARGET_DIR/release/ringtail, else <repo>/target/release/ringtail);
//   - with RINGTAIL_TEST_TARGET=kafka, Apache Kafka through `scripts/peers/kafka.sh start DIR
//     PORT` ($KAFKA_PEER_SCRIPT overrides the script; the jars come from $KAFKA_PEER_LIBS,
//     which tests/js/run.sh sets), so every expectation is first checked against the
//     reference broker. Ringtail-only tests are skipped there (`ringtailOnly`).
// Every wait is bounded; `brokerTest` prints the broker's log tail (and the clients' log) when a
// test fails.

const { spawn, execFile, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')
const { Kafka, logLevel } = require('kafkajs')

/** How long a broker may take to answer its first request, in ms. */
const START_TIMEOUT_MS = 60_000
/** How long a clean shutdown may take before the broker is killed, in ms. */
const STOP_TIMEOUT_MS = 20_000
/** How long one test may take, in ms (the whole file is bounded by run.sh's --test-timeout). */
const TEST_TIMEOUT_MS = 120_000
/** How many lines of the broker's log a failing test prints. */
const LOG_TAIL_LINES = 80
/** A Rust panic or an allocation abort in Ringtail's log. */
const PANIC = /panicked at|memory allocation of \d+ bytes failed|stack backtrace:/

/** The broker under test: "ringtail" (default) or "kafka". */
const target = process.env.RINGTAIL_TEST_TARGET || 'ringtail'
const repoRoot = path.resolve(__dirname, '..', '..')

function ringtailBin () {
  if (process.env.RINGTAIL_BIN) return process.env.RINGTAIL_BIN
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target')
  return path.join(targetDir, 'release', 'ringtail')
}

/** A loopback port nobody listens on right now (the kernel picks it). */
function freePort (port = 0) {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const chosen = server.address().port
      server.close(() => resolve(chosen))
    })
  })
}

/** A free port p with p+1 free too (the Kafka peer's controller listens on PORT+1). */
async function freePortPair () {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort()
    try {
      await freePort(port + 1)
      return port
    } catch (_) {}
  }
  throw new Error('no two adjacent free loopback ports found')
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Runs a command to its end (bounded by timeoutMs); resolves to its output, rejects on failure. */
function run (command, args, timeoutMs, env = process.env) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', env },
      (error, stdout, stderr) => {
        if (error) {
          error.message += `\n${stdout}${stderr}`
          reject(error)
        } else {
          resolve(stdout + stderr)
        }
      })
  })
}

/** One running broker. */
class Broker {
  constructor ({ addr, dir, logPath }) {
    /** host:port of its PLAINTEXT listener on loopback. */
    this.addr = addr
    /** Its log directory (Ringtail) or the node's directory (Kafka). */
    this.dir = dir
    /** The file holding its output. */
    this.logPath = logPath
    /** The Ringtail process (null for Kafka, which the peer script owns). */
    this.process = null
    this.exitStatus = null
  }

  logText () {
    try {
      return fs.readFileSync(this.logPath, 'utf8')
    } catch (error) {
      return `(cannot read ${this.logPath}: ${error.message})`
    }
  }

  /** The last LOG_TAIL_LINES lines of its output (Kafka: the script's, then logs/server.log). */
  logTail () {
    let text = this.logText()
    if (target === 'kafka') {
      const server = path.join(this.dir, 'logs', 'server.log')
      if (fs.existsSync(server)) text += `\n----- ${server}\n` + fs.readFileSync(server, 'utf8')
    }
    return text.trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n')
  }

  /** The log around the first panic or abort ("" if none; only Ringtail's log is checked). */
  panic () {
    if (target !== 'ringtail') return ''
    const text = this.logText()
    const match = PANIC.exec(text)
    if (!match) return ''
    return text.slice(Math.max(0, match.index - 1500), match.index + 3000)
  }

  /** False once the Ringtail process has exited. */
  alive () {
    return this.process === null || this.exitStatus === null
  }

  /** Waits until a fresh client gets the cluster's metadata. */
  async waitReady () {
    const deadline = Date.now() + START_TIMEOUT_MS
    let lastError = null
    while (Date.now() < deadline) {
      if (!this.alive()) {
        throw new Error(`broker exited during start-up (${this.exitStatus})\n${this.logTail()}`)
      }
      const admin = new Kafka({
        clientId: 'ringtail-js-ready',
        brokers: [this.addr],
        connectionTimeout: 1000,
        retry: { retries: 0 },
        logLevel: logLevel.NOTHING
      }).admin()
      try {
        await admin.connect()
        await admin.describeCluster()
        return
      } catch (error) {
        lastError = error
      } finally {
        await admin.disconnect().catch(() => {})
      }
      await sleep(200)
    }
    throw new Error(`broker at ${this.addr} not answering after ${START_TIMEOUT_MS} ms: ${lastError}`)
  }
}

async function startRingtail (scratch) {
  const binary = ringtailBin()
  if (!fs.existsSync(binary)) {
    throw new Error(`ringtail binary not found at ${binary}: run \`cargo build --release\` or set RINGTAIL_BIN`)
  }
  const port = await freePort()
  const broker = new Broker({
    addr: `127.0.0.1:${port}`,
    dir: path.join(scratch, 'data'),
    logPath: path.join(scratch, 'broker.log')
  })
  // group.initial.rebalance.delay.ms=0 as the Kafka peer has for one node.
  const args = ['serve', '--listeners', `PLAINTEXT://${broker.addr}`, '--log-dirs', broker.dir,
    '--shards', process.env.RINGTAIL_TEST_SHARDS || '2',
    '--set', 'group.initial.rebalance.delay.ms=0',
    // No HTTP listener: its default port 9644 would clash between brokers.
    '--set', 'ringtail.http.listener=']
  const log = fs.openSync(broker.logPath, 'a')
  fs.writeSync(log, `===== harness: ${binary} ${args.join(' ')}\n`)
  const env = { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '1', RUST_LOG: process.env.RUST_LOG || 'info' }
  broker.process = spawn(binary, args, { stdio: ['ignore', log, log], env, detached: true })
  fs.closeSync(log)
  const exited = new Promise(resolve => broker.process.once('exit', (code, signal) => {
    broker.exitStatus = signal ? `signal ${signal}` : `exit code ${code}`
    resolve()
  }))
  broker.stop = async () => {
    if (!broker.alive()) throw new Error(`ringtail had exited before the end of the tests (${broker.exitStatus})`)
    broker.process.kill('SIGTERM')
    const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)])
    if (!stopped) {
      process.kill(-broker.process.pid, 'SIGKILL')
      await exited
      throw new Error(`ringtail did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM; killed`)
    }
    if (broker.exitStatus !== 'exit code 0') throw new Error(`ringtail ended with ${broker.exitStatus} after SIGTERM`)
  }
  process.once('exit', () => { if (broker.alive()) process.kill(-broker.process.pid, 'SIGKILL') })
  await broker.waitReady()
  return broker
}

async function startKafka (scratch) {
  const script = process.env.KAFKA_PEER_SCRIPT || path.join(repoRoot, 'scripts', 'peers', 'kafka.sh')
  if (!fs.existsSync(script)) throw new Error(`Kafka peer script not found at ${script} (set KAFKA_PEER_SCRIPT)`)
  if (!process.env.KAFKA_PEER_LIBS) {
    throw new Error('KAFKA_PEER_LIBS is not set: the libs directory that `scripts/peers/kafka.sh install DIR` filled; tests/js/run.sh sets it')
  }
  const port = await freePortPair()
  const broker = new Broker({
    addr: `127.0.0.1:${port}`,
    dir: path.join(scratch, 'kafka'),
    logPath: path.join(scratch, 'kafka-peer.log')
  })
  let stopped = false
  broker.stop = async () => {
    stopped = true
    await run(script, ['stop', broker.dir], 3 * STOP_TIMEOUT_MS)
  }
  // The node outlives this process unless stopped: stop it when the process ends early.
  process.once('exit', () => {
    if (!stopped) {
      try { execFileSync(script, ['stop', broker.dir], { timeout: 3 * STOP_TIMEOUT_MS, stdio: 'ignore' }) } catch (_) {}
    }
  })
  try {
    fs.writeFileSync(broker.logPath, await run(script, ['start', broker.dir, String(port)], 3 * START_TIMEOUT_MS))
  } catch (error) {
    fs.writeFileSync(broker.logPath, error.message)
    throw error
  }
  await broker.waitReady()
  return broker
}

// A signal (the test runner's timeout, Ctrl-C) ends the process through process.exit, so the
// 'exit' handlers above stop the broker.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`# ${signal}: stopping the broker`)
    process.exit(1)
  })
}

/** Starts the broker under test in a new temporary directory. */
async function startBroker () {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ringtail-js-clients-'))
  let broker
  if (target === 'ringtail') broker = await startRingtail(scratch)
  else if (target === 'kafka') broker = await startKafka(scratch)
  else throw new Error(`RINGTAIL_TEST_TARGET=${target}: expected ringtail or kafka`)
  broker.scratch = scratch
  // After the handlers that stop the broker (registered first): no directory left behind.
  process.once('exit', () => {
    if (!process.env.RINGTAIL_TEST_KEEP) fs.rmSync(scratch, { recursive: true, force: true })
  })
  const stop = broker.stop
  broker.stop = async () => {
    try {
      await stop()
    } finally {
      if (!process.env.RINGTAIL_TEST_KEEP) fs.rmSync(scratch, { recursive: true, force: true })
    }
  }
  console.log(`# broker under test: ${target} at ${broker.addr}`)
  return broker
}

/**
 * A test against `getBroker()`, bounded by TEST_TIMEOUT_MS: when it fails, the broker's log tail is attached (as TAP
 * diagnostics) and a Ringtail process that is no longer running fails it too.
 */
function brokerTest (name, getBroker, fn, options = {}) {
  return test(name, { timeout: TEST_TIMEOUT_MS, ...options }, async t => {
    const broker = getBroker()
    clientLog.length = 0
    try {
      await fn(t, broker)
      if (!broker.alive()) throw new Error(`ringtail is no longer running (${broker.exitStatus})`)
    } catch (error) {
      const report = `----- KafkaJS log (last ${CLIENT_LOG_LINES} lines) -----\n` +
        clientLog.slice(-CLIENT_LOG_LINES).join('\n') +
        `\n----- ${target} broker log tail (${broker.logPath}) -----\n${broker.logTail()}`
      for (const line of report.split('\n')) t.diagnostic(line)
      throw error
    }
  })
}

/**
 * KafkaJS log lines (JSON), kept in memory and printed only when a test fails: the clients
 * log expected broker errors (TOPIC_ALREADY_EXISTS, REBALANCE_IN_PROGRESS) at ERROR level.
 */
const clientLog = []
const CLIENT_LOG_LINES = 40

/** A KafkaJS logCreator that appends to clientLog (use with logLevel INFO or lower). */
function clientLogCreator () {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    clientLog.push(`${label} [${namespace}] ${message} ${JSON.stringify(extra)}`)
    if (clientLog.length > 10 * CLIENT_LOG_LINES) clientLog.splice(0, clientLog.length - CLIENT_LOG_LINES)
  }
}

/** Test options that skip a Ringtail-only test when the target is Kafka. */
function ringtailOnly (reason) {
  return target === 'kafka' ? { skip: `Ringtail-only: ${reason}` } : {}
}

let uniqueCounter = 0
/** A topic or group name no other test uses. */
function uniqueName (prefix) {
  uniqueCounter += 1
  return `${prefix}-${process.pid}-${Date.now() % 1_000_000_000}-${uniqueCounter}`
}

/** Polls condition every 100 ms until it is true, or fails after timeoutMs with describe(). */
async function waitFor (timeoutMs, condition, describe) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`after ${timeoutMs} ms: ${describe()}`)
    await sleep(100)
  }
}

module.exports = { target, startBroker, brokerTest, clientLogCreator, ringtailOnly, uniqueName, waitFor, sleep }
