package pgtest

import (
	"context"

	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// DefaultBin is where Debian's postgresql-15 puts its programs.
const DefaultBin = "/usr/lib/postgresql/15/bin"

// BinEnv overrides DefaultBin.
const BinEnv = "RIPOSTE_PG_BIN"

// Options tune a Server.
type Options struct {
	// Durable keeps fsync on (benchmarks); tests run with fsync off,
	// which loses nothing unless the machine itself crashes.
	Durable bool
	// TCP makes the server listen on 127.0.0.1 as well as its socket, on
	// a free port (TCPAddr), for tests that put a proxy in between.
	TCP bool
	// Settings are more server settings, "name=value" each (postgres -c).
	Settings []string
}

// Server is one running PostgreSQL.
type Server struct {
	dir   string // owns data/ and the socket
	bin   string
	cred  *syscall.Credential
	fsync string
	extra []string // Options.Settings
	log   string
	port  int // 0: the default; set with Options.TCP
	dbs   atomic.Int64
	stop  sync.Once

	mu     sync.Mutex // guards cmd and exited against Restart
	cmd    *exec.Cmd
	exited chan struct{}
}

// Bin returns the directory of initdb and postgres.
func Bin() string {
	if b := os.Getenv(BinEnv); b != "" {
		return b
	}
	return DefaultBin
}

// Start initialises a cluster in a new temporary directory and starts it.
func Start(opts Options) (_ *Server, err error) {
	bin := Bin()
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
	}
	// Short path: a unix socket path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "riposte-pg-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{dir: dir, log: filepath.Join(dir, "postgres.log")}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	cred, err := credential(dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start postgres: initdb: %w\n%s", err, out)
	}
	s.bin, s.cred, s.fsync, s.extra = bin, cred, "off", opts.Settings
	if opts.TCP {
		if s.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
	}
	if opts.Durable {
		s.fsync = "on"
	}
	if err := s.launch(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

// launch starts postgres on the initialised data directory and waits
// until it takes connections. The caller holds mu or owns s alone.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if s.cred != nil {
		_ = os.Chown(s.log, int(s.cred.Uid), int(s.cred.Gid))
	}
	listen, port := "", "5432"
	if s.port != 0 {
		listen, port = "127.0.0.1", strconv.Itoa(s.port)
	}
	args := []string{"-D", filepath.Join(s.dir, "data"), "-k", s.dir,
		"-c", "listen_addresses=" + listen, "-p", port, "-c", "fsync=" + s.fsync, "-c", "full_page_writes=" + s.fsync,
		"-c", "max_connections=200", "-c", "shared_buffers=64MB", "-c", "unix_socket_permissions=0777"}
	for _, kv := range s.extra {
		args = append(args, "-c", kv)
	}
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	cmd, exited := s.cmd, make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	return s.waitReady(30 * time.Second)
}

// halt stops postgres: sig SIGINT is a fast shutdown, SIGQUIT an immediate
// one (no checkpoint: the next start recovers from the WAL, as after a
// crash). SIGKILL after 10 s. The caller holds mu.
func (s *Server) halt(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Restart stops the server (immediately, like a crash, when crash is
// true; else a fast shutdown) and starts it again on the same data. The
// URLs stay valid; open connections break.
func (s *Server) Restart(crash bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := syscall.SIGINT
	if crash {
		sig = syscall.SIGQUIT
	}
	s.halt(sig)
	if err := s.launch(); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// credential is the postgres user's when running as root (initdb refuses
// root), with dir handed to it; nil otherwise.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.log)
			return fmt.Errorf("postgres exited: %s", log)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
	}
}

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.dir}, "user": {"postgres"}, "sslmode": {"disable"}}
	if s.port != 0 {
		q.Set("port", strconv.Itoa(s.port))
	}
	return (&url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: q.Encode()}).String()
}

// TCPAddr is the server's 127.0.0.1 address; "" unless started with
// Options.TCP.
func (s *Server) TCPAddr() string {
	if s.port == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URLAt is the URL of database db reached over TCP at addr (the server's
// TCPAddr, or a proxy in front of it).
func URLAt(addr, db string) string {
	q := url.Values{"sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: addr, Path: "/" + db, RawQuery: q.Encode()}).String()
}

// DBName is the database name in a URL from Database.
func DBName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(p.Path, "/")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Database creates a new, empty database and returns its URL.
func (s *Server) Database(ctx context.Context) (string, error) {
	name := fmt.Sprintf("riposte_%d", s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.mu.Lock()
		s.halt(syscall.SIGINT)
		s.mu.Unlock()
		os.RemoveAll(s.dir)
	})
}

// Shared starts one Server for a test binary on first use. The zero value
// is ready; call Stop from TestMain after m.Run.
type Shared struct {
	Options Options
	once    sync.Once
	srv     *Server
	err     error
}

// Get returns the server, starting it the first time. Without PostgreSQL's
// programs the test skips, or fails in CI.
func (sh *Shared) Get(t testing.TB) *Server {
	t.Helper()
	testutil.Paths(t, filepath.Join(Bin(), "initdb"), filepath.Join(Bin(), "postgres"))
	sh.once.Do(func() { sh.srv, sh.err = Start(sh.Options) })
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.srv
}

// Database is Get(t).Database: a new, empty database's URL.
func (sh *Shared) Database(t testing.TB) string {
	t.Helper()
	url, err := sh.Get(t).Database(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Stop stops the server if it was started.
func (sh *Shared) Stop() {
	if sh.srv != nil {
		sh.srv.Stop()
	}
}
