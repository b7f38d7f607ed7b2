package capture

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

func TestParseHexAddr(t *testing.T) {
	tests := []struct {
		in   string
		addr string
		port uint16
		err  bool
	}{
		{"0100007F:0035", "127.0.0.1", 53, false},
		{"0200A8C0:1F90", "192.168.0.2", 8080, false},
		{"00000000:0000", "0.0.0.0", 0, false},
		{"00000000000000000000000001000000:0016", "::1", 22, false},
		{"0000000000000000FFFF00000100007F:01BB", "127.0.0.1", 443, false}, // v4-mapped
		{"B80D0120000000000000000001000000:0050", "2001:db8::1", 80, false},
		{"0100007F", "", 0, true},
		{"0100007G:0035", "", 0, true},
		{"01007F:0035", "", 0, true},
		{"0100007F:XYZ", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			addr, port, err := parseHexAddr(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if addr != tt.addr || port != tt.port {
				t.Errorf("= %s:%d, want %s:%d", addr, port, tt.addr, tt.port)
			}
		})
	}
}

func TestParseInetSockets(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 020011AC:A1B2 010011AC:1F90 01 00000000:00000000 02:000A7C6F 00000000  1000        0 4242 2 0000000000000000 20 4 30 10 -1
`
	got, err := parseInetSockets([]byte(tcp), "tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := []capfile.Socket{
		{Proto: "tcp", State: "LISTEN", LocalAddr: "0.0.0.0", LocalPort: 80, RemoteAddr: "0.0.0.0", Inode: 31337},
		{Proto: "tcp", State: "ESTABLISHED", LocalAddr: "172.17.0.2", LocalPort: 0xa1b2, RemoteAddr: "172.17.0.1", RemotePort: 8080, UID: 1000, Inode: 4242},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	const udp = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0B00007F:A3E4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0
`
	got, err = parseInetSockets([]byte(udp), "udp")
	if err != nil || len(got) != 1 || got[0].State != "" || got[0].LocalAddr != "127.0.0.11" || got[0].Inode != 777 {
		t.Errorf("udp: %+v, %v", got, err)
	}
	if _, err := parseInetSockets([]byte("hdr\n 0: 0100007F:0035 short\n"), "tcp"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("short line: err = %v", err)
	}
}

func TestParseUnixSockets(t *testing.T) {
	const unix = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 1001 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 1002
0000000000000000: 00000002 00000000 00000000 0002 01 1003 @abstract name
`
	got, err := parseUnixSockets([]byte(unix))
	if err != nil {
		t.Fatal(err)
	}
	want := []capfile.Socket{
		{Proto: "unix", State: "LISTEN", Type: "stream", Path: "/run/app.sock", Inode: 1001},
		{Proto: "unix", State: "CONNECTED", Type: "stream", Inode: 1002},
		{Proto: "unix", State: "UNCONNECTED", Type: "dgram", Path: "@abstract name", Inode: 1003},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestCgroupNames(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name string
		cg   string
		want bool
	}{
		{"v1", "12:pids:/docker/" + id + "\n11:memory:/docker/" + id + "\n", true},
		{"v2 systemd", "0::/system.slice/docker-" + id + ".scope\n", true},
		{"nested", "0::/docker/" + id + "/init.scope\n", true},
		{"other container", "12:pids:/docker/" + strings.Repeat("f", 64) + "\n", false},
		{"prefix only", "12:pids:/docker/" + id[:12] + "\n", false},
		{"host", "0::/user.slice/session-1.scope\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupNames([]byte(tt.cg), id); got != tt.want {
				t.Errorf("= %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	stat := "4242 (a (weird) name) S 4200 4242 4242 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1000 200 18446744073709551615\n"
	ppid, tty, start, ok := parseStat([]byte(stat))
	if !ok || ppid != 4200 || tty != 34816 || start != 123456 {
		t.Errorf("= %d %d %d %v", ppid, tty, start, ok)
	}
	if _, _, _, ok := parseStat([]byte("4242 (x) S 1")); ok {
		t.Error("short stat parsed")
	}
}

// TestReadState reads this test's own process tree and sockets from the
// real /proc: a child with its arguments, and a listening socket owned by
// this process.
func TestReadState(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	child := exec.CommandContext(ctx, "sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); child.Wait() }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	testutil.Eventually(t, 5*time.Second, func() bool {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child.Process.Pid))
		return err == nil && strings.TrimSpace(string(comm)) == "sleep"
	}, "the child never exec'd sleep")

	self := os.Getpid()
	st := readState("/proc", "", self)
	var me, kid *capfile.Process
	for i := range st.procs {
		switch int(st.procs[i].PID) {
		case self:
			me = &st.procs[i]
		case child.Process.Pid:
			kid = &st.procs[i]
		}
	}
	if me == nil || kid == nil {
		t.Fatalf("state has no process for the test (%v) or its child (%v): %+v", me != nil, kid != nil, st.procs)
	}
	if !slices.Equal(kid.Args, []string{"sleep", "30"}) || kid.PPID != uint32(self) || kid.Comm != "sleep" || kid.Started.IsZero() {
		t.Errorf("child = %+v", kid)
	}
	if time.Since(kid.Started) > time.Minute || time.Since(kid.Started) < 0 {
		t.Errorf("child started %s, now %s", kid.Started, time.Now())
	}
	var found bool
	for _, s := range st.sockets {
		if s.Proto == "tcp" && s.LocalPort == port {
			found = true
			if s.State != "LISTEN" || s.LocalAddr != "127.0.0.1" || !slices.Contains(s.PIDs, uint32(self)) {
				t.Errorf("listener = %+v", s)
			}
		}
		if s.Proto == "unix" && len(s.PIDs) == 0 {
			t.Errorf("unix socket of no member process kept: %+v", s)
		}
	}
	if !found {
		t.Errorf("no socket for the listener on port %d in %d sockets", port, len(st.sockets))
	}
}

// TestReadPasswd: names come from the root's own /etc/passwd; a symbolic
// link planted there cannot lead outside the root.
func TestReadPasswd(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/:/bin/false\nbad line\n"), 0o644)
	if got := readPasswd(root); len(got) != 2 || got[0] != "root" || got[1000] != "web" {
		t.Errorf("users = %v", got)
	}
	// A host file the container points at: resolved inside the root, so
	// /outside/passwd is <root>/outside/passwd, which does not exist.
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("hostuser:x:4242:4242::/:/bin/sh\n"), 0o644)
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(evil, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if got := readPasswd(evil); len(got) != 0 {
		t.Errorf("followed a link out of the root: %v", got)
	}
}
