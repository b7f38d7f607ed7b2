package program

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/notifiers/stream"
)

// script writes an executable /bin/sh script into dir. The script is the
// operator's program under test; riposte itself builds no shell command.
func script(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newProgram(t testing.TB, cfg Config) *Program {
	t.Helper()
	p, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func alertRecord(t testing.TB, output string) stream.Record {
	t.Helper()
	a := alert.Alert{
		ID:       "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41",
		Time:     time.Date(2026, 11, 20, 9, 14, 3, 0, time.UTC),
		Rule:     "Terminal shell in container",
		Priority: alert.PriorityCritical,
		Output:   output,
		OutputFields: map[string]any{
			"container.id": "3f9a1c2b7d4e", "container.name": "payments-api",
		},
	}
	r, err := stream.FromAlert(a, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The alert text is full of shell syntax; it must reach the program's stdin
// byte for byte, and none of it may run.
func TestShellMetacharactersArriveIntact(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	evil := fmt.Sprintf("$(touch %s) ; rm -rf / | & \\ ` \" ' `touch %s-2` ${IFS} > %s-3 \n $((1+1)) * ?", marker, marker, marker)
	out := filepath.Join(dir, "stdin")
	args := filepath.Join(dir, "argv")
	// tee copies stdin to a file: no shell anywhere between riposte and it.
	p := newProgram(t, Config{Argv: []string{"tee", out}, Env: []string{}})
	a := alertRecord(t, evil)
	a.Rule = evil // in the rule too: it is never used to build anything

	res, err := p.Run(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.PID == 0 || res.Program != "tee" {
		t.Errorf("result %+v", res)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(a.JSON)+"\n" {
		t.Fatalf("stdin = %q\nwant    %q", got, string(a.JSON)+"\n")
	}
	var back alert.Alert
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.Output != evil {
		t.Errorf("output = %q\nwant     %q", back.Output, evil)
	}
	for _, m := range []string{marker, marker + "-2", marker + "-3"} {
		if _, err := os.Stat(m); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists: alert text was executed", m)
		}
	}

	// argv is exactly the configured list: a script that records its
	// arguments, NUL-separated, gets them unchanged.
	rec := script(t, "args.sh", `printf '%s\0' "$0" "$@" > "$1"`)
	p2 := newProgram(t, Config{Argv: []string{rec, args, "two words", "$(id)", ""}})
	if err := p2.Write(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(args)
	if want := rec + "\x00" + args + "\x00two words\x00$(id)\x00\x00"; string(b) != want {
		t.Errorf("argv = %q, want %q", b, want)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("marker exists")
	}
}

func TestFailureIsRetryableWithStderr(t *testing.T) {
	prog := script(t, "fail.sh", `cat > /dev/null; echo "boom: mail server said no" >&2; exit 3`)
	p := newProgram(t, Config{Argv: []string{prog}})
	r := alertRecord(t, "x")
	res, err := p.Run(context.Background(), r)
	if err == nil || !actions.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	var re *RunError
	if !errors.As(err, &re) || re.Result.ExitCode != 3 || res.ExitCode != 3 || res.Stderr != "boom: mail server said no\n" || res.TimedOut {
		t.Errorf("result %+v, error %v", res, err)
	}
	want := fmt.Sprintf(`write record alert/%s to program %s: exit status 3 (stderr: "boom: mail server said no")`, r.ID, prog)
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	d := res.Detail()
	if d["exit_code"] != 3 || d["stderr"] != "boom: mail server said no\n" || d["program"] != prog {
		t.Errorf("detail %v", d)
	}
}

func TestPermanentExitCodes(t *testing.T) {
	prog := script(t, "dataerr.sh", `exit 65`)
	p := newProgram(t, Config{Argv: []string{prog}, PermanentExitCodes: []int{65}})
	err := p.Write(context.Background(), alertRecord(t, "x"))
	if err == nil || actions.IsRetryable(err) {
		t.Errorf("exit 65 listed as permanent: err = %v, retryable %v", err, actions.IsRetryable(err))
	}
	prog = script(t, "tempfail.sh", `exit 75`)
	p = newProgram(t, Config{Argv: []string{prog}, PermanentExitCodes: []int{65}})
	if err := p.Write(context.Background(), alertRecord(t, "x")); err == nil || !actions.IsRetryable(err) {
		t.Errorf("exit 75: err = %v, want retryable", err)
	}
}

func TestStderrIsCapped(t *testing.T) {
	prog := script(t, "chatty.sh", `i=0; while [ $i -lt 2000 ]; do echo "line $i of far too much diagnostic output" >&2; i=$((i+1)); done; exit 1`)
	p := newProgram(t, Config{Argv: []string{prog}})
	res, err := p.Run(context.Background(), alertRecord(t, "x"))
	if err == nil {
		t.Fatal("no error")
	}
	if len(res.Stderr) != StderrLimit || !res.StderrTruncated || !strings.HasPrefix(res.Stderr, "line 0 of") {
		t.Errorf("stderr %d bytes, truncated %v", len(res.Stderr), res.StderrTruncated)
	}
	if len(err.Error()) > 1024 {
		t.Errorf("error message is %d bytes", len(err.Error()))
	}
}

// A large record to a program that never reads stdin: no deadlock, no error.
func TestProgramIgnoringStdin(t *testing.T) {
	p := newProgram(t, Config{Argv: []string{"true"}, Timeout: 10 * time.Second})
	if err := p.Write(context.Background(), alertRecord(t, strings.Repeat("x", 1<<20))); err != nil {
		t.Fatal(err)
	}
}

// dead reports whether pid has exited (gone, or a zombie).
func dead(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func waitDead(t *testing.T, what string, pid int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool { return dead(pid) }, "%s (pid %d) still running", what, pid)
}

// waitStarted waits for a script that touches "$0.started" to have run.
func waitStarted(t *testing.T, prog string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(prog + ".started")
		return err == nil
	}, "%s never started", prog)
}

func TestHangingProgramIsKilledWithItsChildren(t *testing.T) {
	dir := t.TempDir()
	childPID := filepath.Join(dir, "child")
	// The script starts a child that would outlive it, ignores SIGTERM,
	// and hangs.
	prog := script(t, "hang.sh", `trap '' TERM; sleep 300 & echo $! > "$1"; sleep 300`)
	p := newProgram(t, Config{Argv: []string{prog, childPID}, Timeout: 500 * time.Millisecond})
	start := time.Now()
	res, err := p.Run(context.Background(), alertRecord(t, "x"))
	took := time.Since(start)
	if err == nil || !actions.IsRetryable(err) || !res.TimedOut || res.Signal != "killed" || res.ExitCode != -1 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if !strings.Contains(err.Error(), "killed after timeout 500ms") {
		t.Errorf("error = %v", err)
	}
	if took < 500*time.Millisecond || took > 4*time.Second {
		t.Errorf("run took %s with a 500ms timeout", took)
	}
	b, err := os.ReadFile(childPID)
	if err != nil {
		t.Fatal(err)
	}
	cpid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitDead(t, "the program", res.PID)
	waitDead(t, "the program's child", cpid)
}

func TestCallerCancelKills(t *testing.T) {
	prog := script(t, "hang.sh", `sleep 300`)
	p := newProgram(t, Config{Argv: []string{prog}, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := p.Run(ctx, alertRecord(t, "x"))
	if err == nil || !actions.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) || res.TimedOut {
		t.Fatalf("result %+v, err %v", res, err)
	}
	waitDead(t, "the program", res.PID)
}

func TestConcurrencyCap(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	prog := script(t, "slow.sh", `echo start >> "$1"; sleep 0.3; echo end >> "$1"`)
	p := newProgram(t, Config{Argv: []string{prog, log}, MaxConcurrent: 2})
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Write(context.Background(), alertRecord(t, strconv.Itoa(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("6 runs of 0.3s, 2 at a time, took %s", d)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	running, peak, starts := 0, 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			running++
			starts++
		case "end":
			running--
		}
		peak = max(peak, running)
	}
	if peak != 2 || starts != 6 || running != 0 {
		t.Errorf("peak %d running at once, %d starts, %d unfinished; want 2, 6, 0", peak, starts, running)
	}
}

func TestWaitingForASlotHonoursContext(t *testing.T) {
	prog := script(t, "hang.sh", `touch "$0.started"; exec sleep 300`)
	p := newProgram(t, Config{Argv: []string{prog}, MaxConcurrent: 1, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- p.Write(ctx, alertRecord(t, "1")) }()
	waitStarted(t, prog)
	wctx, wcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer wcancel()
	res, err := p.Run(wctx, alertRecord(t, "2"))
	if err == nil || !actions.IsRetryable(err) || res.PID != 0 || !strings.Contains(err.Error(), "wait for a free slot") {
		t.Errorf("second run: %+v %v", res, err)
	}
	cancel()
	if err := <-first; err == nil {
		t.Error("first run survived cancel")
	}
}

func TestCloseKillsRunning(t *testing.T) {
	prog := script(t, "hang.sh", `touch "$0.started"; exec sleep 300`)
	p, err := New(Config{Argv: []string{prog}, Timeout: time.Minute}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Write(context.Background(), alertRecord(t, "x")) }()
	waitStarted(t, prog)
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Close took %s", d)
	}
	if err := <-done; err == nil || !actions.IsRetryable(err) || !strings.Contains(err.Error(), "output closed") {
		t.Errorf("running write: %v", err)
	}
	if err := p.Write(context.Background(), alertRecord(t, "x")); err == nil || !actions.IsRetryable(err) {
		t.Errorf("write after close: %v", err)
	}
}

func TestEnvironmentAllowlist(t *testing.T) {
	t.Setenv("TEST_WEBHOOK", "https://hooks.example/T0/B0/secret")
	t.Setenv("TEST_LANG", "C.UTF-8")
	t.Setenv("TEST_OTHER", "must not leak")
	dump := script(t, "env.sh", `env > "$1"`)
	path := "PATH=" + os.Getenv("PATH")
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"default: PATH only", nil, []string{path}},
		{"none", []string{}, nil},
		{"allowlisted", []string{"PATH", "SLACK_URL", "TEST_LANG", "UNSET_VARIABLE"},
			[]string{path, "SLACK_URL=https://hooks.example/T0/B0/secret", "TEST_LANG=C.UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "env")
			p, err := New(Config{Argv: []string{dump, out}, Env: tt.env}, Deps{LookupEnv: func(k string) (string, bool) {
				if k == "SLACK_URL" {
					return os.LookupEnv("TEST_WEBHOOK")
				}
				return os.LookupEnv(k)
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Write(context.Background(), journalRecord(t)); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				switch name, _, _ := strings.Cut(l, "="); name {
				case "", "PWD", "OLDPWD", "SHLVL", "_": // sh sets these itself
				default:
					got = append(got, l)
				}
			}
			want := append(append([]string{}, tt.want...), "RIPOSTE_KIND=journal", "RIPOSTE_TYPE=action.failed", "RIPOSTE_PRIORITY=Error")
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("environment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func journalRecord(t testing.TB) stream.Record {
	t.Helper()
	r, err := stream.FromEntry(store.Entry{Seq: 42, Time: time.Now(), Type: store.ActionFailed, Detail: map[string]any{"error": "x"}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Falco's `jq '{text: .output}' | curl -d @- -X POST https://hooks.slack.com/...`
// done as documented: a script file, the URL from the environment.
func TestSlackRecipe(t *testing.T) {
	testutil.Tools(t, "jq", "curl")
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/services/T0/B0/XYZ" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		got <- string(b)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	t.Setenv("SLACK_WEBHOOK_URL", srv.URL+"/services/T0/B0/XYZ")
	slack, err := filepath.Abs("testdata/slack.sh")
	if err != nil {
		t.Fatal(err)
	}
	p := newProgram(t, Config{Argv: []string{slack}, Env: []string{"PATH", "SLACK_WEBHOOK_URL"}, Timeout: 15 * time.Second})
	text := "Shell spawned: $(reboot) `id` | & ; \" ' \\ ✓"
	if err := p.Write(context.Background(), alertRecord(t, text)); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Text string `json:"text"`
	}
	select {
	case b := <-got:
		if err := json.Unmarshal([]byte(b), &body); err != nil || body.Text != text {
			t.Errorf("Slack got %q (%v), want text %q", b, err, text)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook received nothing")
	}

	// The receiver refuses: curl -f exits non-zero, the failure is
	// retryable and curl's complaint is in the result.
	t.Setenv("SLACK_WEBHOOK_URL", srv.URL+"/wrong")
	p2 := newProgram(t, Config{Argv: []string{slack}, Env: []string{"PATH", "SLACK_WEBHOOK_URL"}, Timeout: 15 * time.Second})
	res, err := p2.Run(context.Background(), alertRecord(t, text))
	if err == nil || !actions.IsRetryable(err) || res.ExitCode != 22 || !strings.Contains(res.Stderr, "400") {
		t.Errorf("refused: %+v %v", res, err)
	}
}

// The mail recipe, with a stand-in mail(1) found through PATH that records
// what it was given.
func TestMailRecipe(t *testing.T) {
	bin := t.TempDir()
	out := filepath.Join(t.TempDir(), "mail")
	fake := "#!/bin/sh\n{ printf '%s\\0' \"$@\"; echo; cat; } > " + out + "\n"
	if err := os.WriteFile(filepath.Join(bin, "mail"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	p := newProgram(t, Config{Argv: []string{"mail", "-s", "riposte alert", "someone@example.com"}})
	r := alertRecord(t, "a \"quoted\" $(shell) output")
	if err := p.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "-s\x00riposte alert\x00someone@example.com\x00\n" + string(r.JSON) + "\n"
	if string(b) != want {
		t.Errorf("mail got %q\nwant %q", b, want)
	}
}

func TestInvalidRecordRunsNothing(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	p := newProgram(t, Config{Argv: []string{"touch", marker}})
	r := alertRecord(t, "x")
	r.JSON = nil
	err := p.Write(context.Background(), r)
	if err == nil || actions.IsRetryable(err) {
		t.Errorf("err = %v, want permanent", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("program ran for an invalid record")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok", Config{Argv: []string{"mail", "-s", "x", "a@b"}}, ""},
		{"no argv", Config{}, "program config: argv: missing (the program and its arguments, as a list)"},
		{"empty program", Config{Argv: []string{""}}, "program config: argv: missing (the program and its arguments, as a list)"},
		{"nul", Config{Argv: []string{"mail", "a\x00b"}}, "program config: argv[1]: contains NUL"},
		{"timeout", Config{Argv: []string{"x"}, Timeout: -1}, "program config: timeout: must not be negative, got -1ns"},
		{"concurrency", Config{Argv: []string{"x"}, MaxConcurrent: 1000}, "program config: max_concurrent: want 1 to 256, got 1000"},
		{"env name", Config{Argv: []string{"x"}, Env: []string{"A-B"}}, `program config: env[0]: "A-B" is not a variable name`},
		{"env reserved", Config{Argv: []string{"x"}, Env: []string{"RIPOSTE_KIND"}}, "program config: env[0]: RIPOSTE_KIND: RIPOSTE_ variables are set by riposte"},
		{"env twice", Config{Argv: []string{"x"}, Env: []string{"PATH", "PATH"}}, "program config: env[1]: PATH listed twice"},
		{"dir", Config{Argv: []string{"x"}, Dir: "tmp"}, `program config: dir: want an absolute path, got "tmp"`},
		{"exit codes", Config{Argv: []string{"x"}, PermanentExitCodes: []int{0, 300}}, "program config: permanent_exit_codes[0]: want 1 to 255, got 0\npermanent_exit_codes[1]: want 1 to 255, got 300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v\nwant         %q", err, tt.want)
			}
		})
	}
}

func TestNewFindsTheProgram(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing", Config{Argv: []string{"riposte-no-such-program"}}, `program config: argv[0]: exec: "riposte-no-such-program": executable file not found in $PATH`},
		{"not executable", Config{Argv: []string{notExec}}, "permission denied"},
		{"bad dir", Config{Argv: []string{"true"}, Dir: "/nonexistent-dir"}, "program config: dir: /nonexistent-dir is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Deps{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || actions.IsRetryable(err) {
				t.Errorf("New: %v, want permanent %q", err, tt.want)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader("argv: [mail, -s, \"riposte alert\", someone@example.com]\ntimeout: 15s\nmax_concurrent: 2\nenv: []\npermanent_exit_codes: [65]\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Argv) != 4 || c.Argv[2] != "riposte alert" || c.Timeout != 15*time.Second || c.MaxConcurrent != 2 || c.Env == nil || len(c.Env) != 0 {
		t.Errorf("decoded %+v (env nil: %v)", c, c.Env == nil)
	}
	var unset Config
	if err := yaml.Unmarshal([]byte("argv: [x]\n"), &unset); err != nil {
		t.Fatal(err)
	}
	if unset.Env != nil || strings.Join(unset.withDefaults().Env, ",") != "PATH" {
		t.Errorf("env unset decodes to %#v", unset.Env)
	}
	dec = yaml.NewDecoder(strings.NewReader("command: \"mail -s x\"\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil || !strings.Contains(err.Error(), "field command not found") {
		t.Errorf("a shell command string must not be accepted: %v", err)
	}
}
