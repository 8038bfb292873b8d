// Package clients_test drives a real broker with the Go Kafka clients franz-go (kgo, kadm) and
// sarama, each with its default settings.
//
// TestMain starts one broker for the whole package run, on a free loopback port with a
// temporary data directory:
//
//   - by default the `ringtail` binary ($RINGTAIL_BIN, else <repo>/target/release/ringtail);
//   - with RINGTAIL_TEST_TARGET=kafka, Apache Kafka through
//     `scripts/peers/kafka.sh start DIR PORT` (the script's path can be overridden with
//     $KAFKA_PEER_SCRIPT; the jars come from $KAFKA_PEER_LIBS, which tests/go/run.sh sets), so
//     every expectation here is first checked against the reference broker. Tests of
//     Ringtail-only behaviour call skipOnKafka.
//
// Each test uses its own topics and groups, so tests do not see each other's data. A failing
// test prints the broker's log tail; every wait is bounded.
package clients_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// startTimeout bounds how long a broker may take to answer its first request.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a clean shutdown before the broker is killed.
	stopTimeout = 20 * time.Second
	// logTailLines is how much of the broker's log a failing test prints.
	logTailLines = 80
)

// target is the broker under test: "ringtail" (default) or "kafka".
var target = func() string {
	if value := os.Getenv("RINGTAIL_TEST_TARGET"); value != "" {
		return value
	}
	return "ringtail"
}()

// testBroker is the broker all tests of this run talk to.
var testBroker *broker

// broker is one running broker process.
type broker struct {
	// addr is host:port of its PLAINTEXT listener on loopback.
	addr string
	// dataDir is its log directory (Ringtail) or the peer's directory (Kafka).
	dataDir string
	// logPath is the file holding its output.
	logPath string
	// process is the Ringtail process; nil for Kafka, which the peer script owns.
	process *exec.Cmd
	// exited is set once the Ringtail process has ended.
	exited atomic.Bool
	// stopBroker ends the broker; stop calls it once.
	stopBroker func() error
	stopOnce   sync.Once
	stopErr    error
}

// stop ends the broker (once; later calls return the first call's result).
func (b *broker) stop() error {
	b.stopOnce.Do(func() { b.stopErr = b.stopBroker() })
	return b.stopErr
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

// guardBroker makes sure the broker does not outlive the test binary: on SIGINT/SIGTERM it is
// stopped before the binary exits, and shortly before go test's -timeout would end the binary
// (a panic that skips deferred calls) it is stopped too, so the tests still running fail.
func guardBroker() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		received := <-signals
		fmt.Fprintf(os.Stderr, "%v: stopping the broker\n", received)
		_ = testBroker.stop()
		os.Exit(1)
	}()
	timeout := flag.Lookup("test.timeout")
	if timeout == nil {
		return
	}
	getter, ok := timeout.Value.(flag.Getter)
	if !ok {
		return
	}
	if limit, ok := getter.Get().(time.Duration); ok && limit > 2*guardMargin {
		time.AfterFunc(limit-guardMargin, func() {
			fmt.Fprintf(os.Stderr, "go test -timeout %v is near: stopping the broker\n", limit)
			_ = testBroker.stop()
		})
	}
}

// guardMargin is how long before go test's -timeout the broker is stopped (Kafka's controlled
// shutdown takes up to 30 s).
const guardMargin = 40 * time.Second

func runTests(m *testing.M) int {
	scratch, err := os.MkdirTemp("", "ringtail-go-clients-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer func() {
		if os.Getenv("RINGTAIL_TEST_KEEP") == "" {
			os.RemoveAll(scratch)
		} else {
			fmt.Printf("kept the broker's directory %s (RINGTAIL_TEST_KEEP)\n", scratch)
		}
	}()

	switch target {
	case "ringtail":
		testBroker, err = startRingtail(scratch)
	case "kafka":
		testBroker, err = startKafka(scratch)
	default:
		err = fmt.Errorf("RINGTAIL_TEST_TARGET=%q: expected ringtail or kafka", target)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the %s broker: %v\n", target, err)
		if testBroker != nil {
			fmt.Fprintln(os.Stderr, testBroker.logTail())
			_ = testBroker.stop()
		}
		return 1
	}
	fmt.Printf("broker under test: %s at %s (log %s)\n", target, testBroker.addr, testBroker.logPath)
	guardBroker()

	code := m.Run()

	if err := testBroker.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the broker: %v\n", err)
		code = 1
	}
	if found := panicIn(testBroker.logText()); found != "" {
		fmt.Fprintf(os.Stderr, "FAIL: the broker log shows a panic or abort:\n%s\n", found)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "----- %s broker log tail (%s) -----\n%s\n", target,
			testBroker.logPath, testBroker.logTail())
	}
	return code
}

// repoRoot is the repository's top directory (tests/go/../..).
func repoRoot() string {
	working, err := os.Getwd()
	if err != nil {
		return "."
	}
	return filepath.Clean(filepath.Join(working, "..", ".."))
}

// ringtailBin is $RINGTAIL_BIN, else $CARGO_TARGET_DIR/release/ringtail, else
// <repo>/target/release/ringtail (the same rule as tests/harness.py).
func ringtailBin() string {
	if explicit := os.Getenv("RINGTAIL_BIN"); explicit != "" {
		return explicit
	}
	targetDir := os.Getenv("CARGO_TARGET_DIR")
	if targetDir == "" {
		targetDir = filepath.Join(repoRoot(), "target")
	}
	return filepath.Join(targetDir, "release", "ringtail")
}

// freePort is a loopback port nobody listens on right now (the kernel picks it).
func freePort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

func startRingtail(scratch string) (*broker, error) {
	binary := ringtailBin()
	if info, err := os.Stat(binary); err != nil || info.IsDir() {
		return nil, fmt.Errorf("ringtail binary not found at %s: run `cargo build --release` "+
			"or set RINGTAIL_BIN", binary)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	shards := os.Getenv("RINGTAIL_TEST_SHARDS")
	if shards == "" {
		shards = "2"
	}
	b := &broker{
		addr:    fmt.Sprintf("127.0.0.1:%d", port),
		dataDir: filepath.Join(scratch, "data"),
		logPath: filepath.Join(scratch, "broker.log"),
	}
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// The same settings the Kafka peer gets for one node (group.initial.rebalance.delay.ms=0),
	// so group tests do not wait three seconds for every first join.
	b.process = exec.Command(binary, "serve",
		"--listeners", "PLAINTEXT://"+b.addr,
		"--log-dirs", b.dataDir,
		"--shards", shards,
		"--set", "group.initial.rebalance.delay.ms=0",
		// No HTTP listener: its default port 9644 would clash between brokers.
		"--set", "ringtail.http.listener=",
	)
	b.process.Stdout = logFile
	b.process.Stderr = logFile
	b.process.Env = append(os.Environ(), "NO_COLOR=1", "RUST_BACKTRACE=1")
	if os.Getenv("RUST_LOG") == "" {
		b.process.Env = append(b.process.Env, "RUST_LOG=info")
	}
	b.process.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logFile, "===== harness: %s\n", strings.Join(b.process.Args, " "))
	if err := b.process.Start(); err != nil {
		return nil, err
	}
	waited := make(chan struct{})
	go func() {
		_ = b.process.Wait()
		b.exited.Store(true)
		close(waited)
	}()
	b.stopBroker = func() error {
		if b.exited.Load() {
			return fmt.Errorf("ringtail had exited before the end of the tests: %v",
				b.process.ProcessState)
		}
		_ = b.process.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
			if !b.process.ProcessState.Success() {
				return fmt.Errorf("ringtail exited with %v after SIGTERM", b.process.ProcessState)
			}
			return nil
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-b.process.Process.Pid, syscall.SIGKILL)
			<-waited
			return fmt.Errorf("ringtail did not stop within %v of SIGTERM; killed", stopTimeout)
		}
	}
	if err := b.waitReady(); err != nil {
		return b, err
	}
	return b, nil
}

// kafkaPeerScript is $KAFKA_PEER_SCRIPT, else <repo>/scripts/peers/kafka.sh.
func kafkaPeerScript() string {
	if explicit := os.Getenv("KAFKA_PEER_SCRIPT"); explicit != "" {
		return explicit
	}
	return filepath.Join(repoRoot(), "scripts", "peers", "kafka.sh")
}

// freePortPair is a loopback port p such that p and p+1 are free: the Kafka peer's controller
// listens on PORT+1.
func freePortPair() (int, error) {
	for range 50 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if next, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
			next.Close()
			return port, nil
		}
	}
	return 0, errors.New("no two adjacent free loopback ports found")
}

// startKafka starts one Apache Kafka node in scratch/kafka with the jars of $KAFKA_PEER_LIBS
// (`kafka.sh install DIR` fills DIR/libs).
func startKafka(scratch string) (*broker, error) {
	script := kafkaPeerScript()
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("Kafka peer script not found at %s (set KAFKA_PEER_SCRIPT): %v",
			script, err)
	}
	if os.Getenv("KAFKA_PEER_LIBS") == "" {
		return nil, errors.New("KAFKA_PEER_LIBS is not set: the libs directory that " +
			"`scripts/peers/kafka.sh install DIR` filled (DIR/libs); tests/go/run.sh sets it")
	}
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	b := &broker{
		addr:    fmt.Sprintf("127.0.0.1:%d", port),
		dataDir: filepath.Join(scratch, "kafka"),
		logPath: filepath.Join(scratch, "kafka-peer.log"),
	}
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	start := exec.CommandContext(ctx, script, "start", b.dataDir, strconv.Itoa(port))
	start.Stdout = logFile
	start.Stderr = logFile
	b.stopBroker = func() error {
		stopCtx, stopCancel := context.WithTimeout(context.Background(), 3*stopTimeout)
		defer stopCancel()
		stop := exec.CommandContext(stopCtx, script, "stop", b.dataDir)
		output, err := stop.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s stop %s: %v\n%s", script, b.dataDir, err, output)
		}
		return nil
	}
	if err := start.Run(); err != nil {
		return b, fmt.Errorf("%s start %s %d: %v", script, b.dataDir, port, err)
	}
	if err := b.waitReady(); err != nil {
		return b, err
	}
	return b, nil
}

// waitReady waits until the broker answers a request over a fresh connection.
func (b *broker) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if b.exited.Load() {
			return fmt.Errorf("broker exited during start-up: %v", b.process.ProcessState)
		}
		client, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			lastErr = client.Ping(ctx)
			cancel()
			client.Close()
			if lastErr == nil {
				return nil
			}
		} else {
			lastErr = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("broker at %s not answering after %v: %v", b.addr, startTimeout, lastErr)
}

func (b *broker) logText() string {
	text, err := os.ReadFile(b.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", b.logPath, err)
	}
	return string(text)
}

// logTail is the last logTailLines lines of the broker's output (for Kafka, of the peer
// script's output followed by the node's logs/server.log).
func (b *broker) logTail() string {
	text := b.logText()
	if target == "kafka" {
		if server, err := os.ReadFile(filepath.Join(b.dataDir, "logs", "server.log")); err == nil {
			text += "\n----- " + filepath.Join(b.dataDir, "logs", "server.log") + "\n" + string(server)
		}
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// panicPattern matches a Rust panic or an allocation abort in Ringtail's log.
var panicPattern = regexp.MustCompile(`panicked at|memory allocation of \d+ bytes failed|stack backtrace:`)

// panicIn is the log around the first panic or abort, or "" (only Ringtail's log is checked).
func panicIn(text string) string {
	if target != "ringtail" {
		return ""
	}
	location := panicPattern.FindStringIndex(text)
	if location == nil {
		return ""
	}
	return text[max(0, location[0]-1500):min(len(text), location[0]+3000)]
}

// brokerAddr is the address tests connect to; it also registers the per-test failure report
// (once per test): a failing test prints the broker's log tail, unless one of its subtests
// already did, and a test after which Ringtail is no longer running fails.
func brokerAddr(t *testing.T) string {
	t.Helper()
	if _, registered := reportRegistered.LoadOrStore(t, true); !registered {
		t.Cleanup(func() { reportAfter(t) })
	}
	return testBroker.addr
}

var (
	reportRegistered sync.Map
	reportMu         sync.Mutex
	// reportedTests are the tests whose failure printed the log tail.
	reportedTests []string
)

func reportAfter(t *testing.T) {
	if testBroker.process != nil && testBroker.exited.Load() {
		t.Errorf("ringtail is no longer running: %v", testBroker.process.ProcessState)
	}
	if !t.Failed() {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	for _, name := range reportedTests {
		if strings.HasPrefix(name, t.Name()+"/") {
			return
		}
	}
	reportedTests = append(reportedTests, t.Name())
	t.Logf("----- %s broker log tail (%s) -----\n%s", target, testBroker.logPath, testBroker.logTail())
}

// skipOnKafka skips a test of Ringtail-only behaviour (its files, its recovery) when the
// suite targets Apache Kafka.
func skipOnKafka(t *testing.T, reason string) {
	t.Helper()
	if target == "kafka" {
		t.Skipf("Ringtail-only: %s", reason)
	}
}

var uniqueCounter atomic.Uint64

// uniqueName is prefix-<pid>-<nanos>-<n>: a topic or group name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000_000,
		uniqueCounter.Add(1))
}

// testContext is a context bounded by timeout and by the test's own deadline.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}
