package program

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/stream"
)

// LookupEnv reads riposte's environment (os.LookupEnv's signature).
type LookupEnv func(key string) (string, bool)

// Deps are the output's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// LookupEnv reads the variables named in env; nil: os.LookupEnv.
	LookupEnv LookupEnv
}

// Program runs a program once per record with the record's JSON on its
// standard input. It is safe for concurrent use.
type Program struct {
	cfg  Config
	path string // argv[0] resolved
	name string // argv[0] as configured, for messages
	env  []string
	log  *slog.Logger
	sem  chan struct{}

	// life ends at Close: running programs are killed, waiting writes
	// give up.
	life    context.Context
	end     context.CancelFunc
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

var _ stream.Output = (*Program)(nil)

// Result is what one run did; Detail gives it to the journal.
type Result struct {
	// Program is argv[0] as configured. The other arguments are not
	// repeated here.
	Program string
	PID     int
	// ExitCode is the exit status; -1 when the program was killed by a
	// signal or did not start.
	ExitCode int
	// Signal that killed it ("killed"), "" otherwise.
	Signal   string
	TimedOut bool
	Duration time.Duration
	// Stderr is the start of the program's standard error, at most
	// StderrLimit bytes, invalid UTF-8 replaced.
	Stderr          string
	StderrTruncated bool
}

// Detail is the result as a journal entry's detail.
func (r Result) Detail() map[string]any {
	d := map[string]any{
		"program": r.Program, "exit_code": r.ExitCode, "duration_ms": r.Duration.Milliseconds(),
	}
	if r.PID != 0 {
		d["pid"] = r.PID
	}
	if r.Signal != "" {
		d["signal"] = r.Signal
	}
	if r.TimedOut {
		d["timed_out"] = true
	}
	if r.Stderr != "" {
		d["stderr"] = r.Stderr
	}
	if r.StderrTruncated {
		d["stderr_truncated"] = true
	}
	return d
}

// RunError is a run that failed; errors.As finds it in Write's error, with
// the result to journal. Whether it is retryable is marked on the error Run
// returns (actions.IsRetryable), not here.
type RunError struct {
	Result Result
	Err    error
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("program %s: %v", e.Result.Program, e.Err)
	if s := strings.TrimSpace(e.Result.Stderr); s != "" {
		if len(s) > 512 {
			s = strings.ToValidUTF8(s[:512], "") + "…"
		}
		msg += fmt.Sprintf(" (stderr: %q)", s)
	}
	return msg
}

// Unwrap returns the cause.
func (e *RunError) Unwrap() error { return e.Err }

// New validates cfg and finds the program (a program that is not there, or
// not executable, is a config error).
func New(cfg Config, deps Deps) (*Program, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	path, err := exec.LookPath(cfg.Argv[0])
	if err != nil {
		return nil, fmt.Errorf("program config: argv[0]: %w", err)
	}
	if !filepath.IsAbs(path) {
		if path, err = filepath.Abs(path); err != nil {
			return nil, fmt.Errorf("program config: argv[0]: %w", err)
		}
	}
	if cfg.Dir != "" {
		if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("program config: dir: %s is not a directory", cfg.Dir)
		}
	}
	lookup := deps.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	p := &Program{cfg: cfg, path: path, name: cfg.Argv[0], log: deps.Logger, sem: make(chan struct{}, cfg.MaxConcurrent)}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, k := range cfg.Env {
		if v, ok := lookup(k); ok {
			p.env = append(p.env, k+"="+v)
		}
	}
	p.life, p.end = context.WithCancel(context.Background())
	return p, nil
}

// Write runs the program for r; see Run.
func (p *Program) Write(ctx context.Context, r stream.Record) error {
	_, err := p.Run(ctx, r)
	return err
}

// Run runs the program once with r's JSON and a newline on standard input,
// standard output discarded, in its own process group, with the allowed
// environment plus RIPOSTE_KIND (alert, journal), RIPOSTE_TYPE (alert, or
// the journal entry type) and RIPOSTE_PRIORITY (Falco's name) — values from
// fixed vocabularies, never alert text. It waits for a free slot (at most
// max_concurrent run at once), then for the program, at most timeout: then,
// or when ctx ends or the output is closed, the whole process group is
// killed (SIGKILL). A non-zero exit, a kill or a failure to start is a
// retryable *RunError (permanent for permanent_exit_codes); an invalid record
// is permanent and runs nothing.
func (p *Program) Run(ctx context.Context, r stream.Record) (Result, error) {
	res := Result{Program: p.name, ExitCode: -1}
	fail := func(err error) error {
		return fmt.Errorf("write record %s to %w", r.Key(), err)
	}
	if err := r.Validate(); err != nil {
		return res, fail(&RunError{Result: res, Err: err})
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return res, actions.Retryable(fail(&RunError{Result: res, Err: errors.New("output closed")}))
	}
	p.running.Add(1)
	p.mu.Unlock()
	defer p.running.Done()

	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		return res, actions.Retryable(fail(&RunError{Result: res, Err: fmt.Errorf("wait for a free slot: %w", ctx.Err())}))
	case <-p.life.Done():
		return res, actions.Retryable(fail(&RunError{Result: res, Err: errors.New("output closed")}))
	}

	res, err := p.run(ctx, r)
	if err != nil {
		p.log.Warn("stream program failed", "program", p.name, "record", r.Key(), "exit_code", res.ExitCode,
			"signal", res.Signal, "timed_out", res.TimedOut, "duration", res.Duration)
		err = fail(&RunError{Result: res, Err: err})
		if res.ExitCode > 0 && slices.Contains(p.cfg.PermanentExitCodes, res.ExitCode) {
			return res, err
		}
		return res, actions.Retryable(err)
	}
	p.log.Debug("stream program ran", "program", p.name, "record", r.Key(), "duration", res.Duration)
	return res, nil
}

func (p *Program) run(ctx context.Context, r stream.Record) (Result, error) {
	res := Result{Program: p.name, ExitCode: -1}
	runCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(p.life, cancel)
	defer stop()

	stdin := make([]byte, 0, len(r.JSON)+1)
	stdin = append(append(stdin, r.JSON...), '\n')
	stderr := &capped{limit: StderrLimit}

	cmd := exec.CommandContext(runCtx, p.path, p.cfg.Argv[1:]...)
	cmd.Args[0] = p.cfg.Argv[0]
	cmd.Env = append(slices.Clone(p.env),
		"RIPOSTE_KIND="+string(r.Kind), "RIPOSTE_TYPE="+r.Type, "RIPOSTE_PRIORITY="+r.Priority.String())
	cmd.Dir = p.cfg.Dir
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On timeout or cancellation, kill the whole group: a script's
	// children (curl under sh) die with it.
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	// Wait no longer than this for a killed program, or for descendants
	// that still hold its stdin or stderr after it exited.
	cmd.WaitDelay = 2 * time.Second

	start := time.Now()
	err := cmd.Start()
	if err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("start: %w", err)
	}
	res.PID = cmd.Process.Pid
	err = cmd.Wait()
	res.Duration = time.Since(start)
	res.Stderr, res.StderrTruncated = stderr.String(), stderr.truncated
	if ps := cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited, but left descendants holding our pipes: kill them.
		killGroup(res.PID)
		if res.ExitCode == 0 {
			return res, nil
		}
	}
	if runCtx.Err() != nil && (err != nil || res.ExitCode != 0) {
		if ctx.Err() == nil && p.life.Err() == nil {
			res.TimedOut = true
			return res, fmt.Errorf("killed after timeout %s", p.cfg.Timeout)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("killed: %w", ctx.Err())
		}
		return res, errors.New("killed: output closed")
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return res, ee // "exit status 3", "signal: killed"
		}
		return res, err
	}
	return res, nil
}

// killGroup sends SIGKILL to the process group pgid (= the program's pid).
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Close kills running programs, waits for them, and makes later Writes fail
// (retryably).
func (p *Program) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.end()
	p.running.Wait()
	return nil
}

// capped keeps the first limit bytes written to it and drops the rest, so
// that a chatty program never blocks on a full pipe.
type capped struct {
	limit     int
	buf       []byte
	truncated bool
}

func (c *capped) Write(b []byte) (int, error) {
	room := c.limit - len(c.buf)
	if len(b) > room {
		c.truncated = true
		c.buf = append(c.buf, b[:max(room, 0)]...)
		return len(b), nil
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *capped) String() string { return strings.ToValidUTF8(string(c.buf), "\uFFFD") }

// String describes the output for logs: the program, never its arguments
// (they may name recipients).
func (p *Program) String() string { return "program " + strconv.Quote(p.name) }
