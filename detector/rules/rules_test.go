package rules

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
	exrules "github.com/riposte-sec/riposte/examples/rules"
	"github.com/riposte-sec/riposte/internal/alert"
)

// TestInvalidFiles loads each file of testdata/invalid and checks the exact
// error.
func TestInvalidFiles(t *testing.T) {
	want := map[string]string{
		"bad_condition_field.yaml": `bad_condition_field.yaml:3: rule "Typo in field": condition: unknown field proc.nme (column 29)`,
		"bad_event_type.yaml":      `bad_event_type.yaml:3: rule "Typo in type": condition: evt.type "opne" is not an event type (want one of exec, fork, exit, open, connect, accept, bind, listen, socket, ptrace, memfd_create, setuid, dup, chmod, symlink, link, unlink, rename, truncate, mount, umount, setns, unshare, chdir, cpu_high, memory_growth)`,
		"bad_output_field.yaml":    `bad_output_field.yaml:4: rule "Typo in output": output: unknown field %proc.nme`,
		"bad_priority.yaml":        `bad_priority.yaml:5: rule "Urgent": priority: unknown priority "Urgent" (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)`,
		"bad_template.yaml":        `bad_template.yaml:4: rule "Template typo": output: template: 1:14: executing "output" at <.proc.nme>: map has no entry for key "nme"`,
		"condition_not_bool.yaml":  `condition_not_bool.yaml:3: rule "Not a boolean": condition: expected bool, but got string`,
		"duplicate_key.yaml":       `duplicate_key.yaml:3: duplicate field "desc"`,
		"duplicate_rule.yaml":      `duplicate_rule.yaml:7: rule "Twice": duplicate rule, first defined at duplicate_rule.yaml:1`,
		"enforce_bad_signal.yaml":  `enforce_bad_signal.yaml:6: rule "Kill it": enforce: unknown signal "sigterm" (want sigkill or sigstop)`,
		"enforce_long_name.yaml":   `enforce_long_name.yaml:6: rule "Kill a long name": enforce: proc.name "a-very-long-program-name" can never match: a process name is 1 to 15 bytes (the kernel's comm)`,
		"enforce_not_exec.yaml":    `enforce_not_exec.yaml:6: rule "Kill shadow readers": enforce: enforcement happens at exec: evt.type must be "exec", got "open"`,
		"enforce_not_kernel.yaml":  `enforce_not_kernel.yaml:6: rule "Kill shells of web servers": enforce: the kernel cannot decide "proc.pname == \"nginx\"": an enforced condition must be an exec (evt.type == "exec", the spawned_process macro) in a container (container.id != "host", the in_container macro) of a program named by proc.name or proc.exepath (== "x", in [list], or an "or" of those), joined with "and"`,
		"enforce_on_host.yaml":     `enforce_on_host.yaml:6: rule "Kill netcat anywhere": enforce: enforcement happens only in containers: the condition must require container.id != "host" (in_container)`,
		"enforce_overlap.yaml":     `enforce_overlap.yaml:8: rule "Stop netcat": enforce: proc.name "nc" is already enforced by rule "Kill netcat" (enforce_overlap.yaml:1)`,
		"enforce_two_tests.yaml":   `enforce_two_tests.yaml:6: rule "Kill one netcat": enforce: the kernel cannot decide two program tests joined by "and" ("proc.exepath == \"/bin/nc\""): use one test, or an "or" of tests`,
		"enabled_string.yaml":      `enabled_string.yaml:6: rule "Enabled as a string": enabled: want true or false, got "yes"`,
		"list_items_mapping.yaml":  `list_items_mapping.yaml:4: list "bad_items": items: want scalars (strings or numbers), got a mapping`,
		"macro_cycle.yaml":         "macro_cycle.yaml:2: macro \"a\": cycle: a -> b -> a\nmacro_cycle.yaml:5: macro \"b\": cycle: b -> a -> b",
		"missing_output.yaml":      `missing_output.yaml:1: rule "No output": missing field "output"`,
		"no_kind.yaml":             `no_kind.yaml:1: item has none of the keys rule, macro, list`,
		"not_a_list.yaml":          `not_a_list.yaml:1: want a list of rule, macro and list items, got a mapping`,
		"reserved_name.yaml":       `reserved_name.yaml:1: macro "proc": name is reserved (a field or function of the rule language)`,
		"several_errors.yaml":      "several_errors.yaml:5: rule \"First\": priority: unknown priority \"Loud\" (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)\nseveral_errors.yaml:10: rule \"Second\": output: unknown field %fd.nam",
		"tags_not_list.yaml":       `tags_not_list.yaml:6: rule "Tags as a string": tags: want a list of strings`,
		"two_kinds.yaml":           `two_kinds.yaml:1: item has more than one of the keys rule, macro, list: rule, macro`,
		"undefined_name.yaml":      `undefined_name.yaml:3: rule "Unknown macro": condition: unknown name no_such_macro (column 24)`,
		"unknown_field.yaml":       `unknown_field.yaml:3: rule "Typo": unknown field "conditon" (want one of rule, desc, condition, output, priority, tags, enabled, enforce)`,
		"yaml_syntax.yaml":         `yaml_syntax.yaml:2: did not find expected key`,
	}
	names, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		t.Errorf("%d files in testdata/invalid, %d expected messages", len(names), len(want))
	}
	for _, path := range names {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Compile(File{Name: name, Data: b})
			if err == nil {
				t.Fatalf("loaded %d rules, want an error", len(rs.Rules()))
			}
			if got := err.Error(); got != want[name] {
				t.Fatalf("error:\n got: %s\nwant: %s", got, want[name])
			}
		})
	}
}

func defaultRules(t testing.TB) *Ruleset {
	t.Helper()
	files, err := ReadFS(exrules.FS)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(files...)
	if err != nil {
		t.Fatalf("default rules: %v", err)
	}
	return rs
}

// TestExampleRules loads every file of examples/rules from disk, checks the
// embedded copy is the same, and that the rules other code relies on exist.
func TestExampleRules(t *testing.T) {
	dir := "../../examples/rules"
	files, err := ReadPaths(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(files...)
	if err != nil {
		t.Fatalf("examples/rules: %v", err)
	}
	onDisk, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	embedded, _ := fs.Glob(exrules.FS, "*.yaml")
	if len(onDisk) != len(files) || len(embedded) != len(onDisk) {
		t.Fatalf("%d files on disk, %d loaded, %d embedded", len(onDisk), len(files), len(embedded))
	}
	for _, f := range files {
		b, err := fs.ReadFile(exrules.FS, filepath.Base(f.Name))
		if err != nil || !bytes.Equal(b, f.Data) {
			t.Errorf("%s: embedded copy differs or is missing (%v)", f.Name, err)
		}
	}
	for _, name := range []string{
		"Terminal shell in container", "Shell spawned in container", "Read sensitive file untrusted",
		"Write below binary dir", "Drop and execute new binary in container",
		"Outbound connection to non-allowed destination", "Container listening on new port",
		"Redirect STDOUT/STDIN to network connection in container", "Reverse shell in container",
		"Netcat remote code execution in container", "Packet socket created in container",
		"Execution from /dev/shm", "Fileless execution via memfd_create", "PTRACE attached to process",
		"Container CPU usage above threshold", "Container memory growth above threshold",
	} {
		r := rs.Rule(name)
		if r == nil {
			t.Errorf("default rule %q missing", name)
			continue
		}
		if !r.Enabled || r.Desc == "" || len(r.Tags) == 0 || r.EventTypes() == nil {
			t.Errorf("%q: enabled=%v desc=%q tags=%v types=%v", name, r.Enabled, r.Desc, r.Tags, r.EventTypes())
		}
	}
}

const cid = "3f4e8c1a9b2d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"

func inContainer(ev event.Event) event.Event {
	ev.Container = event.Container{ID: cid, Name: "web", Image: "registry/app", Tag: "1.2", Ports: []uint16{80}}
	if ev.VPID == 0 {
		ev.VPID = 7
	}
	return ev
}

func onHost(ev event.Event) event.Event {
	ev.Container = event.Container{ID: event.HostID}
	return ev
}

func execOf(comm, pname string, args ...string) event.Event {
	return event.Event{Type: event.Exec, Comm: comm, Exe: "/bin/" + comm, Args: append([]string{comm}, args...), PID: 100, PPID: 50, PName: pname, User: "root"}
}

func openOf(comm, path string, flags uint64) event.Event {
	return event.Event{Type: event.Open, Comm: comm, Path: path, Flags: flags, PID: 100, PName: "sh", Ret: 3, User: "root"}
}

// fileOf is a file event: Path and, for symlink, link and rename, Target.
func fileOf(typ, comm, path, target string) event.Event {
	return event.Event{Type: typ, Comm: comm, Path: path, Target: target, PID: 100, PName: "sh", User: "root"}
}

func netOf(typ, raddr string, rport uint16, laddr string, lport uint16) event.Event {
	return event.Event{Type: typ, Comm: "app", PID: 100, Family: "inet", SockType: "stream", RemoteAddr: raddr, RemotePort: rport, LocalAddr: laddr, LocalPort: lport}
}

// TestDefaultRulesMatch feeds the default rules events that must and must
// not alert, and checks exactly which rules match.
func TestDefaultRulesMatch(t *testing.T) {
	rs := defaultRules(t)
	tty := func(ev event.Event) event.Event { ev.TTY = 34816; return ev }
	vpid := func(ev event.Event, n uint32) event.Event { ev.VPID = n; return ev }
	with := func(ev event.Event, f func(*event.Event)) event.Event { f(&ev); return ev }
	tests := []struct {
		name string
		ev   event.Event
		want []string
	}{
		{"docker exec sh -c", inContainer(execOf("sh", "runc", "-c", "cat /etc/shadow")), []string{"Shell spawned in container"}},
		{"docker exec -it sh", tty(inContainer(execOf("sh", "runc"))), []string{"Terminal shell in container"}},
		{"bash via containerd-shim", inContainer(execOf("bash", "containerd-shim")), []string{"Shell spawned in container"}},
		{"container entrypoint shell", vpid(inContainer(execOf("sh", "containerd-shim", "-c", "sleep 1")), 1), nil},
		{"shell started by a shell", inContainer(execOf("sh", "bash")), nil},
		{"the container's CMD-SHELL health check", with(inContainer(execOf("sh", "containerd-shim", "-c", "wget -q localhost || exit 1")), func(e *event.Event) {
			e.Args[0] = "/bin/sh"
			e.Container.Healthcheck = []string{"/bin/sh", "-c", "wget -q localhost || exit 1"}
		}), nil},
		{"a shell that is not the health check", with(inContainer(execOf("sh", "containerd-shim", "-c", "wget -q evil")), func(e *event.Event) {
			e.Container.Healthcheck = []string{"/bin/sh", "-c", "wget -q localhost || exit 1"}
		}), []string{"Shell spawned in container"}},
		{"shell on the host", onHost(execOf("bash", "sshd")), nil},
		{"non-shell in container", inContainer(execOf("cat", "runc", "/etc/hostname")), nil},
		{"cat /etc/shadow in container", inContainer(openOf("cat", "/etc/shadow", 0)), []string{"Read sensitive file untrusted"}},
		{"read sudoers.d on host", onHost(openOf("vim", "/etc/sudoers.d/admins", 0)), []string{"Read sensitive file untrusted"}},
		{"sshd reads shadow", onHost(openOf("sshd", "/etc/shadow", 0o2000000)), nil},
		{"docker export reads a container's shadow (dockerd re-exec, chrooted)",
			onHost(with(openOf("exe", "/etc/shadow", 0o2000000), func(e *event.Event) { e.PName, e.Exe = "dockerd", "/proc/self/exe" })), nil},
		{"a program named exe under another parent still alerts",
			onHost(with(openOf("exe", "/etc/shadow", 0), func(e *event.Event) { e.Exe = "/proc/self/exe" })), []string{"Read sensitive file untrusted"}},
		{"write-only shadow is not a read", inContainer(openOf("tee", "/etc/shadow", 1)), []string{"Write below etc"}},
		{"read /etc/passwd", inContainer(openOf("cat", "/etc/passwd", 0)), nil},
		{"write below /usr/bin", inContainer(openOf("cp", "/usr/bin/evil", 0o1101)), []string{"Write below binary dir"}},
		{"dpkg writes below /usr/bin", onHost(openOf("dpkg", "/usr/bin/ls", 0o1101)), nil},
		{"read below /usr/bin", inContainer(openOf("ld.so", "/usr/bin/ls", 0)), nil},
		{"dropped binary executed", inContainer(with(execOf("miner", "sh"), func(e *event.Event) { e.ExeUpperLayer = true; e.Exe = "/tmp/miner" })),
			[]string{"Drop and execute new binary in container"}},
		{"dropped binary as entrypoint", vpid(inContainer(with(execOf("app", "containerd-shim"), func(e *event.Event) { e.ExeUpperLayer = true })), 1), nil},
		{"exec from /dev/shm", onHost(with(execOf("x", "bash"), func(e *event.Event) { e.Exe = "/dev/shm/x" })), []string{"Execution from /dev/shm"}},
		{"exec ./x with cwd /dev/shm", inContainer(with(execOf("x", "python"), func(e *event.Event) { e.Exe = "./x"; e.Cwd = "/dev/shm" })), []string{"Execution from /dev/shm"}},
		{"memfd exec", inContainer(with(execOf("x", "python"), func(e *event.Event) { e.ExeMemfd = true; e.Exe = "/dev/fd/3" })), []string{"Fileless execution via memfd_create"}},
		{"outbound to the internet", inContainer(netOf(event.Connect, "93.184.216.34", 443, "172.17.0.2", 40000)), []string{"Outbound connection to non-allowed destination"}},
		{"outbound to loopback", inContainer(netOf(event.Connect, "127.0.0.1", 5432, "127.0.0.1", 40000)), nil},
		{"DNS", inContainer(with(netOf(event.Connect, "8.8.8.8", 53, "172.17.0.2", 40000), func(e *event.Event) { e.SockType = "dgram" })), nil},
		{"outbound from the host", onHost(netOf(event.Connect, "93.184.216.34", 443, "10.0.0.2", 40000)), nil},
		{"unix socket connect", inContainer(event.Event{Type: event.Connect, Family: "unix", Path: "/var/run/docker.sock"}), nil},
		{"listen on an undeclared port", inContainer(netOf(event.Listen, "", 0, "0.0.0.0", 4444)), []string{"Container listening on new port"}},
		{"listen on the declared port", inContainer(netOf(event.Listen, "", 0, "0.0.0.0", 80)), nil},
		{"socket dup'd onto stdin", inContainer(with(netOf(event.Dup, "10.0.0.9", 4444, "172.17.0.2", 40000), func(e *event.Event) { e.Ret = 0; e.FD = 3 })),
			[]string{"Redirect STDOUT/STDIN to network connection in container"}},
		{"inetd-style server hands a connection to its child", inContainer(with(netOf(event.Dup, "127.0.0.1", 55364, "127.0.0.1", 8080), func(e *event.Event) {
			e.Comm, e.Ret, e.FD = "httpd", 0, 3
		})), nil},
		{"the same server's client end of a connection", inContainer(with(netOf(event.Dup, "10.0.0.9", 4444, "172.17.0.2", 40000), func(e *event.Event) {
			e.Comm, e.Ret, e.FD = "httpd", 0, 3
		})), []string{"Redirect STDOUT/STDIN to network connection in container"}},
		{"shell with a socket as stdin", inContainer(with(execOf("sh", "nc"), func(e *event.Event) {
			e.StdinNet, e.Family, e.SockType, e.RemoteAddr, e.RemotePort = true, "inet", "stream", "10.0.0.9", 4444
		})), []string{"Reverse shell in container", "Shell spawned in container"}},
		{"nc -e", inContainer(execOf("nc", "sh", "10.0.0.9", "4444", "-e", "/bin/sh")), []string{"Launch Suspicious Network Tool in Container", "Netcat remote code execution in container"}},
		{"plain nc", inContainer(execOf("nc", "sh", "-l", "-p", "80")), []string{"Launch Suspicious Network Tool in Container"}},
		{"plain nc on the host", onHost(execOf("nc", "sh", "-l", "-p", "80")), nil},
		{"apt-get in container", inContainer(execOf("apt-get", "sh", "install", "-y", "nmap")), []string{"Launch Package Management Process in Container"}},
		{"dpkg started by apt-get", inContainer(execOf("dpkg", "apt-get", "--unpack", "x.deb")), nil},
		{"apt-get on the host", onHost(execOf("apt-get", "sh", "update")), nil},
		{"useradd in container", inContainer(execOf("useradd", "sh", "-m", "eve")), []string{"User mgmt binaries"}},
		{"id in container", inContainer(execOf("id", "sh", "-u")), nil},
		{"stratum on the command line", inContainer(execOf("xmrig", "sh", "-o", "stratum+tcp://pool.example:3333", "-u", "w")),
			[]string{"Detect crypto miners using the Stratum protocol"}},
		{"tcp URL on the command line", inContainer(execOf("curl", "sh", "tcp://db:5432")), nil},
		{"find id_rsa", inContainer(execOf("find", "sh", "/", "-name", "id_rsa")), []string{"Search Private Keys or Passwords"}},
		{"grep key header", inContainer(execOf("grep", "sh", "-rl", "BEGIN RSA PRIVATE", "/")), []string{"Search Private Keys or Passwords"}},
		{"find *.log", inContainer(execOf("find", "sh", "/var", "-name", "*.log")), nil},
		{"grep root", inContainer(execOf("grep", "sh", "root", "/etc/group")), nil},
		{"crontab -e", inContainer(execOf("crontab", "sh", "-e")), []string{"Schedule Cron Jobs"}},
		{"crontab -l", inContainer(execOf("crontab", "sh", "-l")), nil},
		{"write /etc/cron.d/x", inContainer(openOf("sh", "/etc/cron.d/x", 0o1101)), []string{"Schedule Cron Jobs", "Write below etc"}},
		{"truncate .bash_history", inContainer(openOf("sh", "/root/.bash_history", 0o1001)), []string{"Delete or rename shell history"}},
		{"append to .bash_history", inContainer(openOf("sh", "/root/.bash_history", 0o2101)), nil},
		{"rm .bash_history", inContainer(fileOf(event.Unlink, "rm", "/root/.bash_history", "")), []string{"Delete or rename shell history"}},
		{"rm a temp file", inContainer(fileOf(event.Unlink, "rm", "/tmp/x", "")), nil},
		{"mv .bash_history away", inContainer(fileOf(event.Rename, "mv", "/root/.bash_history", "/tmp/h")), []string{"Delete or rename shell history"}},
		{"mv a file to .bash_history.bak", inContainer(fileOf(event.Rename, "mv", "/root/notes", "/root/.bash_history.bak")), nil},
		{"truncate a log by path", inContainer(with(fileOf(event.Truncate, "truncate", "/var/log/auth.log", ""), func(e *event.Event) { e.SysArgs = []int64{0} })),
			[]string{"Clear Log Activities"}},
		{"logrotate copytruncate", inContainer(with(fileOf(event.Truncate, "logrotate", "/var/log/app.log", ""), func(e *event.Event) { e.SysArgs = []int64{0} })), nil},
		{"gzip replaces a rotated log", inContainer(openOf("gzip", "/var/log/app.log.1.gz", 0o1101)), nil},
		{"rotate a log", inContainer(fileOf(event.Rename, "mv", "/var/log/app.log", "/var/log/app.log.1")), nil},
		{"chmod u+s", inContainer(with(fileOf(event.Chmod, "chmod", "/tmp/sh", ""), func(e *event.Event) { e.Mode = 0o4755 })),
			[]string{"Set Setuid or Setgid bit"}},
		{"chmod g+s", inContainer(with(fileOf(event.Chmod, "chmod", "/tmp/sh", ""), func(e *event.Event) { e.Mode = 0o2755 })),
			[]string{"Set Setuid or Setgid bit"}},
		{"chmod 755", inContainer(with(fileOf(event.Chmod, "chmod", "/tmp/sh", ""), func(e *event.Event) { e.Mode = 0o755 })), nil},
		{"chmod u+s on the host", onHost(with(fileOf(event.Chmod, "chmod", "/tmp/sh", ""), func(e *event.Event) { e.Mode = 0o4755 })), nil},
		{"symlink to /etc/shadow", inContainer(fileOf(event.Symlink, "ln", "/tmp/s", "/etc/shadow")), []string{"Create Symlink Over Sensitive Files"}},
		{"symlink to /", onHost(fileOf(event.Symlink, "ln", "/tmp/root", "/")), []string{"Create Symlink Over Sensitive Files"}},
		{"symlink to a library", inContainer(fileOf(event.Symlink, "ln", "/lib/libc.so", "libc.so.6")), nil},
		{"hard link to /etc/shadow", inContainer(fileOf(event.Link, "ln", "/tmp/h", "/etc/shadow")), []string{"Create Hardlink Over Sensitive Files"}},
		{"passwd backs up shadow", inContainer(fileOf(event.Link, "passwd", "/etc/shadow-", "/etc/shadow")), nil},
		{"hard link to a log", inContainer(fileOf(event.Link, "ln", "/tmp/h", "/var/log/app.log")), nil},
		{"mount in container", inContainer(with(event.Event{Type: event.Mount, Comm: "mount", Path: "/dev/sda1", Target: "/mnt", FSType: "ext4", Ret: -1},
			func(e *event.Event) {})), []string{"Mount Launched in Container"}},
		{"runc mounts while it sets up", inContainer(event.Event{Type: event.Mount, Comm: "runc:[2:INIT]", Path: "proc", Target: "/proc", FSType: "proc"}), nil},
		{"runc init bind-mounts its own binary", inContainer(event.Event{Type: event.Mount, Comm: "exe", Exe: "/proc/self/exe", Args: []string{"runc", "init"},
			PName: "containerd-shim", Path: "/proc/self/exe", Target: "/var/run/docker/runtime-runc/moby/x/runc.I9wDxd", Flags: 0x1000}), nil},
		{"a program re-executing itself mounts", inContainer(event.Event{Type: event.Mount, Comm: "exe", Exe: "/proc/self/exe", Args: []string{"x", "init"},
			PName: "sh", Path: "/dev/sda1", Target: "/mnt"}), []string{"Mount Launched in Container"}},
		{"mount on the host", onHost(event.Event{Type: event.Mount, Comm: "mount", Path: "/dev/sda1", Target: "/mnt"}), nil},
		{"setns in container", inContainer(event.Event{Type: event.Setns, Comm: "exploit", Path: "mnt:[4026531840]", FD: 3, Flags: 0x20000}),
			[]string{"Change thread namespace"}},
		{"runc enters the container", inContainer(event.Event{Type: event.Setns, Comm: "runc:[1:CHILD]", Path: "mnt:[4026532281]", FD: 3}), nil},
		{"unshare a user namespace", inContainer(event.Event{Type: event.Unshare, Comm: "unshare", Flags: 0x10000000, Ret: -1}),
			[]string{"Change namespace privileges via unshare"}},
		{"unshare the file table", inContainer(event.Event{Type: event.Unshare, Comm: "app", Flags: 0x400}), nil},
		{"udp to an odd port", inContainer(with(netOf(event.Connect, "93.184.216.34", 4789, "172.17.0.2", 40000), func(e *event.Event) { e.SockType = "dgram" })),
			[]string{"Outbound connection to non-allowed destination", "Unexpected UDP Traffic"}},
		{"udp to loopback", inContainer(with(netOf(event.Connect, "127.0.0.1", 4789, "127.0.0.1", 40000), func(e *event.Event) { e.SockType = "dgram" })), nil},
		{"udp to NTP", inContainer(with(netOf(event.Connect, "93.184.216.34", 123, "172.17.0.2", 40000), func(e *event.Event) { e.SockType = "dgram" })),
			[]string{"Outbound connection to non-allowed destination"}},
		{"refused connect to a miner port", inContainer(with(netOf(event.Connect, "93.184.216.34", 3333, "", 0), func(e *event.Event) { e.Ret = -111 })), nil},
		{"nobody at a terminal", tty(inContainer(with(execOf("id", "sh"), func(e *event.Event) { e.User = "nobody" }))), []string{"System user interactive"}},
		{"nobody without a terminal", inContainer(with(execOf("id", "sh"), func(e *event.Event) { e.User = "nobody" })), nil},
		{"root at a terminal", tty(inContainer(execOf("id", "sh"))), nil},
		{"truncate a log", inContainer(openOf("sh", "/var/log/auth.log", 0o1001)), []string{"Clear Log Activities"}},
		{"append to a log", inContainer(openOf("app", "/var/log/app.log", 0o2101)), nil},
		{"shred a log", inContainer(execOf("shred", "sh", "-u", "/var/log/wtmp")), []string{"Clear Log Activities"}},
		{"cat an ssh key", inContainer(openOf("cat", "/home/eve/.ssh/id_rsa", 0)), []string{"Read ssh information"}},
		{"ssh reads its key", inContainer(openOf("ssh", "/home/eve/.ssh/id_rsa", 0)), nil},
		{"cat another's environ", inContainer(with(openOf("cat", "/proc/1/environ", 0), func(e *event.Event) { e.VPID = 7 })),
			[]string{"Read environment variable from /proc files"}},
		{"cat its own environ", inContainer(with(openOf("cat", "/proc/7/environ", 0), func(e *event.Event) { e.VPID = 7 })), nil},
		{"cat /proc/self/environ", inContainer(openOf("cat", "/proc/self/environ", 0)), nil},
		{"passwd writes /etc/shadow", inContainer(openOf("passwd", "/etc/shadow", 0o2)), nil},
		{"runc writes /etc/hosts", inContainer(openOf("runc:[2:INIT]", "/etc/hosts", 0o101)), nil},
		{"echo >> ~/.bashrc", inContainer(openOf("sh", "/root/.bashrc", 0o2101)), []string{"Modify Shell Configuration File"}},
		{"write /etc/profile.d/x.sh", inContainer(openOf("sh", "/etc/profile.d/x.sh", 0o1101)), []string{"Modify Shell Configuration File", "Write below etc"}},
		{"read ~/.bashrc", inContainer(openOf("sh", "/root/.bashrc", 0)), nil},
		{"connect to a miner pool port", inContainer(netOf(event.Connect, "93.184.216.34", 3333, "172.17.0.2", 40000)),
			[]string{"Detect outbound connections to common miner pool ports", "Outbound connection to non-allowed destination"}},
		{"connect to the API server", inContainer(netOf(event.Connect, "10.96.0.1", 443, "172.17.0.2", 40000)),
			[]string{"Contact K8S API Server From Container", "Outbound connection to non-allowed destination"}},
		{"connect to another service IP", inContainer(netOf(event.Connect, "10.96.0.10", 443, "172.17.0.2", 40000)),
			[]string{"Outbound connection to non-allowed destination"}},
		{"packet socket", inContainer(event.Event{Type: event.Socket, Comm: "tcpdump", SysArgs: []int64{17, 3, 768}, Ret: 3}), []string{"Packet socket created in container"}},
		{"inet socket", inContainer(event.Event{Type: event.Socket, Comm: "curl", SysArgs: []int64{2, 1, 0}, Ret: 3}), nil},
		{"ptrace attach", onHost(event.Event{Type: event.Ptrace, Comm: "gdb", SysArgs: []int64{16, 1234, 0, 0}}), []string{"PTRACE attached to process"}},
		{"ptrace traceme", onHost(event.Event{Type: event.Ptrace, Comm: "strace", SysArgs: []int64{0, 0, 0, 0}}), nil},
		{"setuid by non-root", inContainer(event.Event{Type: event.Setuid, Syscall: "setuid", Comm: "exploit", EUID: 1000, SysArgs: []int64{0, -1, -1}}), []string{"Non sudo setuid"}},
		{"setuid by root", inContainer(event.Event{Type: event.Setuid, Syscall: "setuid", Comm: "nginx", EUID: 0, SysArgs: []int64{33, -1, -1}}), nil},
		{"sudo setuid", onHost(event.Event{Type: event.Setuid, Syscall: "setresuid", Comm: "sudo", EUID: 1000, SysArgs: []int64{0, 0, 0}}), nil},
		{"cpu high", inContainer(event.Event{Type: event.CPUHigh, CPUPercent: 99, CPUSeconds: 31}), []string{"Container CPU usage above threshold"}},
		{"memory growth", inContainer(event.Event{Type: event.MemoryGrowth, MemoryBytes: 600 << 20, MemoryGrowthBytes: 300 << 20}), []string{"Container memory growth above threshold"}},
		{"fork", inContainer(event.Event{Type: event.Fork, Comm: "sh"}), nil},
		{"write a file in /", inContainer(openOf("sh", "/payload", 0o1101)), []string{"Write below root"}},
		{"write root's authorized_keys", inContainer(openOf("sh", "/root/.ssh/authorized_keys", 0o2101)), []string{"Write below root"}},
		{"write a tool cache below /root", inContainer(openOf("pip", "/root/.cache/pip/x", 0o1101)), nil},
		{"wget records its HSTS state", inContainer(openOf("wget", "/root/.wget-hsts", 0o1101)), nil},
		{"read a file below /root", inContainer(openOf("cat", "/root/notes", 0)), nil},
		{"write below /root on the host", onHost(openOf("vim", "/root/notes", 0o1101)), nil},
		{"write below /tmp", inContainer(openOf("sh", "/tmp/x", 0o1101)), nil},
		{"unpack into an app's own directories", inContainer(openOf("tar", "/usr/lib/app/libapp.so", 0o1101)), nil},
		{"dockerd applies a built layer", onHost(with(openOf("exe", "/usr/bin/hello", 0o1101), func(e *event.Event) { e.PName, e.Exe = "dockerd", "/proc/self/exe" })), nil},
		{"unpack into /usr/bin outside a package manager", inContainer(openOf("tar", "/usr/bin/app", 0o1101)), []string{"Write below binary dir"}},
	}
	buildStep := func(ev event.Event) event.Event { ev = inContainer(ev); ev.Container.BuildStep = true; return ev }
	// What a Dockerfile's RUN steps do: each is reported outside a build
	// (above) and not in one.
	for _, tt := range []struct {
		name string
		ev   event.Event
	}{
		{"build: apk add", execOf("apk", "sh", "add", "curl")},
		{"build: package script spawns a shell", execOf("sh", "apk", "-c", "post-install")},
		{"build: write below /usr/bin", openOf("tar", "/usr/bin/app", 0o1101)},
		{"build: write below /etc", openOf("sh", "/etc/app.conf", 0o1101)},
		{"build: write below /root", openOf("sh", "/root/.app", 0o1101)},
		{"build: adduser", execOf("adduser", "sh", "-D", "app")},
		{"build: /etc/profile.d", openOf("sh", "/etc/profile.d/app.sh", 0o1101)},
		{"build: cron file", openOf("sh", "/etc/crontabs/root", 0o1101)},
		{"build: run what it built", with(execOf("app", "sh"), func(e *event.Event) { e.ExeUpperLayer = true })},
		{"build: clean logs", execOf("rm", "sh", "-rf", "/var/log/apt")},
		{"build: chmod u+s", with(fileOf(event.Chmod, "chmod", "/usr/bin/ping", ""), func(e *event.Event) { e.Mode = 0o4755 })},
		{"build: fetch from the internet", netOf(event.Connect, "93.184.216.34", 443, "172.17.0.2", 40000)},
	} {
		tests = append(tests, struct {
			name string
			ev   event.Event
			want []string
		}{tt.name, buildStep(tt.ev), nil})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			ev.Time = time.Unix(1700000000, 5)
			matched, _, err := rs.Match(&ev)
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			var got []string
			for _, r := range matched {
				got = append(got, r.Name)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("matched %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAlertShape checks the alert of a match is Falco's JSON shape and
// survives the webhook decoder.
func TestAlertShape(t *testing.T) {
	rs := defaultRules(t)
	ev := inContainer(openOf("cat", "/etc/shadow", 0))
	ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ev.PArgs = []string{"sh", "-c", "cat /etc/shadow"}
	alerts, err := rs.Eval(&ev, "node-1")
	if err != nil || len(alerts) != 1 {
		t.Fatalf("Eval = %d alerts, %v", len(alerts), err)
	}
	a := alerts[0]
	if a.Rule != "Read sensitive file untrusted" || a.Priority != alert.PriorityWarning || a.Source != "syscall" || a.Hostname != "node-1" {
		t.Fatalf("alert = %+v", a)
	}
	wantFields := map[string]any{
		"container.id": cid[:12], "container.name": "web", "container.image.repository": "registry/app",
		"container.image.tag": "1.2", "proc.name": "cat", "proc.cmdline": "cat", "proc.pname": "sh",
		"proc.pid": int64(100), "user.name": "root", "fd.name": "/etc/shadow", "evt.time": ev.Time.UnixNano(),
		"evt.type": "open",
	}
	for k, v := range wantFields {
		if a.OutputFields[k] != v {
			t.Errorf("output_fields[%q] = %#v, want %#v", k, a.OutputFields[k], v)
		}
	}
	if !strings.Contains(a.Output, ": Warning Sensitive file opened for reading by non-trusted program (file=/etc/shadow user=root proc=cat parent=sh") {
		t.Errorf("output = %q", a.Output)
	}
	if a.ID != alert.DeterministicID(a) {
		t.Errorf("uuid %q is not the deterministic id", a.ID)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := alert.Decode(b)
	if err != nil {
		t.Fatalf("decode our own alert: %v\n%s", err, b)
	}
	if back[0].ID != a.ID || back[0].Container().ID != cid[:12] || back[0].OutputFields["evt.time"] != ev.Time.UnixNano() {
		t.Fatalf("round trip: %+v", back[0])
	}
}

func TestOutputTemplateAndMacrosAnywhere(t *testing.T) {
	src := `
- rule: Templated
  desc: d
  condition: is_exec and proc.name in later_list
  output: "{{ .proc.name }} in {{ .container.name }} as {{ .user.name }}"
  priority: notice
  tags: [t]
- macro: is_exec
  condition: evt.type == "exec"
- list: later_list
  items: [inner_list, zsh]
- list: inner_list
  items: [sh, "bash"]
- rule: Disabled
  desc: d
  condition: evt.type == "exec"
  output: o
  priority: debug
  enabled: false
`
	rs, err := Compile(File{Name: "t.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Rule("Templated").Expanded; got != `(evt.type == "exec") and proc.name in ["sh", "bash", "zsh"]` {
		t.Errorf("expanded = %s", got)
	}
	ev := inContainer(execOf("bash", "runc"))
	as, err := rs.Eval(&ev, "h")
	if err != nil || len(as) != 1 {
		t.Fatalf("eval: %d alerts, %v", len(as), err)
	}
	if !strings.HasSuffix(as[0].Output, ": Notice bash in web as root") {
		t.Errorf("output = %q", as[0].Output)
	}
}

func TestFilter(t *testing.T) {
	open := inContainer(openOf("cat", "/etc/shadow", 0))
	exec := onHost(execOf("ls", "bash", "-l"))
	conn := inContainer(netOf(event.Connect, "10.1.2.3", 443, "172.17.0.2", 40000))
	tests := []struct {
		filter string
		ev     event.Event
		want   bool
	}{
		{`evt.type == "open" && fd.name startsWith "/etc"`, open, true},
		{`evt.type == "open" && fd.name startsWith "/etc"`, exec, false},
		{`proc.name == "ls" and proc.args == "-l" and container.id == "host"`, exec, true},
		{`fd.sip == "10.1.2.3" and fd.sport == 443 and fd.l4proto == "tcp"`, conn, true},
		{`inCIDR(fd.sip, ["10.0.0.0/8"])`, conn, true},
		{`inCIDR(fd.sip, ["192.168.0.0/16", "10.1.2.4"])`, conn, false},
		{`glob(fd.name, "/etc/sh*")`, open, true},
		{`container.image.repository == "registry/app" and container.image.tag == "1.2"`, open, true},
		{`fd.name matches "^/etc/(shadow|gshadow)$"`, open, true},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := CompileFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(&tt.ev)
			if err != nil || got != tt.want {
				t.Fatalf("Match = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	for src, want := range map[string]string{
		``:                "compile filter: empty expression",
		`fd.nam == "x"`:   "compile filter: unknown field fd.nam (column 4)",
		`evt.type`:        "compile filter: expected bool, but got string",
		`spawned_process`: "compile filter: unknown name spawned_process (column 1)",
	} {
		if _, err := CompileFilter(src); err == nil || err.Error() != want {
			t.Errorf("CompileFilter(%q) error = %v, want %q", src, err, want)
		}
	}
	// With the ruleset, macros and lists are available.
	f, err := defaultRules(t).Filter(`spawned_process and proc.name in shell_binaries`)
	if err != nil {
		t.Fatal(err)
	}
	sh := inContainer(execOf("sh", "runc"))
	if ok, err := f.Match(&sh); !ok || err != nil {
		t.Fatalf("ruleset filter: %v, %v", ok, err)
	}
}

func TestReplaceIdents(t *testing.T) {
	repl := func(name string) (string, bool) {
		switch name {
		case "m":
			return "(x)", true
		case "l":
			return `["a"]`, true
		}
		return "", false
	}
	tests := []struct{ in, want string }{
		{`m and proc.name in l`, `(x) and proc.name in ["a"]`},
		{`proc.m == "m l" and l`, `proc.m == "m l" and ["a"]`},
		{`evt . m`, `evt . m`},
		{`'it\'s m' or m`, `'it\'s m' or (x)`},
		{"`raw m` or mm or m2", "`raw m` or mm or m2"},
		{`"unterminated m`, `"unterminated m`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := replaceIdents(tt.in, repl); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFieldNames(t *testing.T) {
	names := FieldNames()
	for _, want := range []string{"evt.type", "proc.name", "proc.pname", "fd.name", "fd.sip", "fd.sport", "container.id",
		"container.image.repository", "container.image.tag", "user.name", "evt.arg.request", "container.cpu.percent"} {
		i := sort.SearchStrings(names, want)
		if i >= len(names) || names[i] != want {
			t.Errorf("field %s missing", want)
		}
	}
}

// FuzzCompile: no input makes the loader panic, and an accepted file's
// rules can be evaluated.
func FuzzCompile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.yaml")
	ex, _ := filepath.Glob("../../examples/rules/*.yaml")
	for _, p := range append(seeds, ex...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("- macro: a\n  condition: a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Compile(File{Name: "fuzz.yaml", Data: data})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		ev := inContainer(execOf("sh", "runc"))
		for _, typ := range event.Types() {
			ev.Type = typ
			_, _ = rs.Eval(&ev, "h")
		}
	})
}

func TestAlertK8sFields(t *testing.T) {
	rs := defaultRules(t)
	const uid = "0b7e6a1c-1111-2222-3333-444455556666"
	tests := []struct {
		name string
		set  func(c *event.Container)
		want map[string]any // nil: no k8s fields
	}{
		{"pod uid from the cgroup path, no runtime", func(c *event.Container) { c.PodUID = uid },
			map[string]any{"k8s.pod.uid": uid, "k8s.pod.name": "", "k8s.ns.name": ""}},
		{"CRI labels", func(c *event.Container) {
			c.Labels = map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop", LabelPodUID: uid}
		}, map[string]any{"k8s.pod.uid": uid, "k8s.pod.name": "web-0", "k8s.ns.name": "shop"}},
		{"path uid wins over a label", func(c *event.Container) {
			c.PodUID = uid
			c.Labels = map[string]string{LabelPodName: "web-0", LabelPodUID: "other"}
		}, map[string]any{"k8s.pod.uid": uid, "k8s.pod.name": "web-0", "k8s.ns.name": ""}},
		{"plain Docker container", func(c *event.Container) {}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := inContainer(openOf("cat", "/etc/shadow", 0))
			tt.set(&ev.Container)
			alerts, err := rs.Eval(&ev, "node-1")
			if err != nil || len(alerts) != 1 {
				t.Fatalf("Eval = %d alerts, %v", len(alerts), err)
			}
			f := alerts[0].OutputFields
			if tt.want == nil {
				for _, k := range k8sFields {
					if _, ok := f[k]; ok {
						t.Errorf("output_fields has %s outside Kubernetes", k)
					}
				}
				return
			}
			for k, v := range tt.want {
				if f[k] != v {
					t.Errorf("output_fields[%q] = %#v, want %#v", k, f[k], v)
				}
			}
		})
	}
}

// TestSocketNameClientToServer: fd.name reads client->server in connect,
// accept, listen, dup and exec-with-a-socket events alike, so that one
// reverse shell shows the same connection in all of its alerts.
func TestSocketNameClientToServer(t *testing.T) {
	const reverse = "172.17.0.2:40000->10.0.0.9:4444" // the container connected out to a listener on 4444
	const bind = "10.0.0.9:40000->172.17.0.2:4444"    // a client connected in to a listener in the container on 4444
	tests := []struct {
		name string
		ev   event.Event
		want string
	}{
		{"connect", netOf(event.Connect, "10.0.0.9", 4444, "172.17.0.2", 40000), reverse},
		{"dup of a connected-out socket", netOf(event.Dup, "10.0.0.9", 4444, "172.17.0.2", 40000), reverse},
		{"exec with a connected-out stdin", func() event.Event {
			ev := netOf(event.Exec, "10.0.0.9", 4444, "172.17.0.2", 40000)
			ev.StdinNet = true
			return ev
		}(), reverse},
		{"accept", netOf(event.Accept, "10.0.0.9", 40000, "172.17.0.2", 4444), bind},
		{"dup of an accepted socket", netOf(event.Dup, "10.0.0.9", 40000, "172.17.0.2", 4444), bind},
		{"dup, neither port ephemeral: higher port is the client", netOf(event.Dup, "10.0.0.9", 443, "172.17.0.2", 1024),
			"172.17.0.2:1024->10.0.0.9:443"},
		{"dup, both ephemeral: higher port is the client", netOf(event.Dup, "10.0.0.9", 40000, "172.17.0.2", 50000),
			"172.17.0.2:50000->10.0.0.9:40000"},
		{"listen", netOf(event.Listen, "", 0, "0.0.0.0", 4444), "0.0.0.0:0->0.0.0.0:4444"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			if got := NewEnv(&ev).FD.Name; got != tt.want {
				t.Fatalf("fd.name = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFileAndNamespaceFields checks the fields the file-tree, mount and
// namespace events and failed syscalls give rules and alerts.
func TestFileAndNamespaceFields(t *testing.T) {
	tests := []struct {
		name string
		ev   event.Event
		want map[string]any
	}{
		{"chmod 4755", event.Event{Type: event.Chmod, Path: "/tmp/sh", Mode: 0o4755},
			map[string]any{"evt.arg.mode": "S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH", "fd.name": "/tmp/sh",
				"fd.directory": "/tmp", "evt.failed": false, "evt.errno": ""}},
		{"fchmod by fd", event.Event{Type: event.Chmod, Path: "sh", FD: 3, Mode: 0o2000},
			map[string]any{"evt.arg.mode": "S_ISGID", "fd.name": "sh", "fd.num": int64(3)}},
		{"symlink", event.Event{Type: event.Symlink, Path: "/tmp/l", Target: "/etc/shadow"},
			map[string]any{"evt.arg.target": "/etc/shadow", "evt.arg.linkpath": "/tmp/l", "fd.name": "/tmp/l"}},
		{"link", event.Event{Type: event.Link, Path: "/tmp/h", Target: "/etc/shadow"},
			map[string]any{"evt.arg.oldpath": "/etc/shadow", "evt.arg.newpath": "/tmp/h"}},
		{"rename", event.Event{Type: event.Rename, Path: "/a", Target: "/b"},
			map[string]any{"evt.arg.oldpath": "/a", "evt.arg.newpath": "/b", "fd.name": "/b"}},
		{"rmdir", event.Event{Type: event.Unlink, Syscall: "rmdir", Path: "/tmp/d", Flags: 0x200},
			map[string]any{"evt.arg.flags": "AT_REMOVEDIR", "evt.arg.name": "/tmp/d"}},
		{"truncate", event.Event{Type: event.Truncate, Path: "/var/log/x", SysArgs: []int64{0}},
			map[string]any{"evt.arg.length": int64(0), "fd.name": "/var/log/x"}},
		{"refused mount", event.Event{Type: event.Mount, Path: "/dev/sda1", Target: "/mnt", FSType: "ext4", Flags: 0xc0ed0000 | 1, Ret: -1},
			map[string]any{"evt.arg.dev": "/dev/sda1", "evt.arg.dir": "/mnt", "evt.arg.type": "ext4", "evt.arg.flags": "MS_RDONLY",
				"evt.failed": true, "evt.errno": "EPERM"}},
		{"umount -l", event.Event{Type: event.Umount, Path: "/mnt", Flags: 2}, map[string]any{"evt.arg.dir": "/mnt", "evt.arg.flags": "MNT_DETACH"}},
		{"setns", event.Event{Type: event.Setns, Path: "net:[4026532281]", FD: 4, Flags: 0x40000000},
			map[string]any{"fd.name": "net:[4026532281]", "fd.num": int64(4), "evt.arg.flags": "CLONE_NEWNET"}},
		{"unshare with an unnamed bit", event.Event{Type: event.Unshare, Flags: 0x10020000 | 1<<40},
			map[string]any{"evt.arg.flags": "CLONE_NEWNS|CLONE_NEWUSER|0x10000000000"}},
		{"refused connect", event.Event{Type: event.Connect, Ret: -111}, map[string]any{"evt.failed": true, "evt.errno": "ECONNREFUSED"}},
		{"connect in progress", event.Event{Type: event.Connect, Ret: -115}, map[string]any{"evt.failed": false, "evt.errno": ""}},
		{"unknown errno", event.Event{Type: event.Mount, Ret: -4000}, map[string]any{"evt.errno": "E4000"}},
		{"exit code is not an error", event.Event{Type: event.Exit, Ret: -1}, map[string]any{"evt.failed": false}},
	}
	fields := buildFields()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(&tt.ev)
			for name, want := range tt.want {
				if got := fields.value(env, name); got != want {
					t.Errorf("%s = %#v, want %#v", name, got, want)
				}
			}
		})
	}
}

// TestEnforcement checks what an `enforce:` rule compiles to for the
// kernel: the signal and the program names and paths, through macros and
// lists.
func TestEnforcement(t *testing.T) {
	const base = `
- list: tools
  items: [nc, ncat, socat]
- macro: spawned_process
  condition: evt.type == "exec"
- macro: in_container
  condition: container.id != "host"
`
	for _, tc := range []struct {
		name, rule string
		want       *Enforcement
	}{
		{"list by name", `spawned_process and in_container and proc.name in tools`,
			&Enforcement{Signal: SigKill, Names: []string{"nc", "ncat", "socat"}}},
		{"one path, reversed", `container.id != "host" and "/tmp/x" == proc.exepath and evt.type == "exec"`,
			&Enforcement{Signal: SigKill, Paths: []string{"/tmp/x"}}},
		{"or of name and paths", `spawned_process and in_container and (proc.name == "nc" or proc.exepath in ["/a", "/b", "/a"])`,
			&Enforcement{Signal: SigKill, Names: []string{"nc"}, Paths: []string{"/a", "/b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := base + "- rule: R\n  desc: d\n  condition: '" + tc.rule + "'\n  output: o\n  priority: Critical\n  enforce: SIGKILL\n"
			rs, err := Compile(File{Name: "r.yaml", Data: []byte(src)})
			if err != nil {
				t.Fatal(err)
			}
			got := rs.Rule("R").Enforce
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("enforcement = %+v, want %+v", got, tc.want)
			}
			if n := len(rs.Enforced()); n != 1 {
				t.Fatalf("Enforced() lists %d rules, want 1", n)
			}
		})
	}
	// The README's example, over the default macros and lists.
	files, err := ReadFS(exrules.FS)
	if err != nil {
		t.Fatal(err)
	}
	readme := `
- rule: Netcat in container
  desc: netcat has no business in our containers.
  condition: spawned_process and in_container and (proc.name in netcat_binaries or proc.exepath == "/tmp/nc")
  output: netcat ran (proc=%proc.name container=%container.id)
  priority: Critical
  enforce: sigkill
`
	ex, err := Compile(append(files, File{Name: "readme.yaml", Data: []byte(readme)})...)
	if err != nil {
		t.Fatal(err)
	}
	want := &Enforcement{Signal: SigKill, Names: []string{"nc", "nc.openbsd", "nc.traditional", "ncat", "netcat"}, Paths: []string{"/tmp/nc"}}
	if got := ex.Rule("Netcat in container").Enforce; !reflect.DeepEqual(got, want) {
		t.Fatalf("README example enforces %+v, want %+v", got, want)
	}
	rs := defaultRules(t)
	if n := len(rs.Enforced()); n != 0 {
		t.Fatalf("the default rules enforce %d rules, want none (enforcement is opt-in)", n)
	}
}

// TestWantsFailed: a rule wants the failures of its event types unless a
// top-level conjunct of its condition (macros expanded) excludes them.
func TestWantsFailed(t *testing.T) {
	tests := []struct {
		name, condition string
		wants, failed   bool
	}{
		{"macro excludes failures", `outbound and fd.sport == 1`, true, false},
		{"not evt.failed", `evt.type == "connect" and not evt.failed`, true, false},
		{"! evt.failed", `evt.type == "connect" && !evt.failed`, true, false},
		{"evt.failed == false", `evt.type == "connect" and evt.failed == false`, true, false},
		{"failures only", `evt.type == "connect" and evt.failed`, true, true},
		{"no result test", `evt.type == "connect" and fd.sport == 1`, true, true},
		{"exclusion under or does not count", `evt.type == "connect" and (not evt.failed or fd.sport == 1)`, true, true},
		{"other type", `evt.type == "open"`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "- macro: outbound\n  condition: evt.type == \"connect\" and not evt.failed\n" +
				"- rule: r\n  desc: d\n  condition: " + tt.condition + "\n  output: o\n  priority: Notice\n"
			rs, err := Compile(File{Name: "t.yaml", Data: []byte(src)})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if got := rs.Wants("connect"); got != tt.wants {
				t.Errorf("Wants(connect) = %v, want %v", got, tt.wants)
			}
			if got := rs.WantsFailed("connect"); got != tt.failed {
				t.Errorf("WantsFailed(connect) = %v, want %v", got, tt.failed)
			}
		})
	}
}
