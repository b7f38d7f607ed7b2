package capture

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// maxStateProcs bounds the processes the state header lists.
const maxStateProcs = 8192

// maxStateArgs bounds the command line kept of one process (bytes).
const maxStateArgs = 64 << 10

// state is the container's state when the capture starts.
type state struct {
	procs   []capfile.Process
	sockets []capfile.Socket
	notes   []string // what could not be read
}

// readState reads the processes of the container (full id id, main process
// initPID) and the sockets of its network namespace from procRoot
// (normally /proc). A process belongs to the container when a line of its
// cgroup file names the container id, or when it descends from initPID.
func readState(procRoot, id string, initPID int) state {
	var st state
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		st.notes = append(st.notes, fmt.Sprintf("list processes: %v", err))
		return st
	}
	boot := bootTime(procRoot)
	type cand struct {
		pid, ppid int
		inCgroup  bool
	}
	var cands []cand
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // gone
		}
		ppid, _, _, ok := parseStat(stat)
		if !ok {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
		cands = append(cands, cand{pid: pid, ppid: ppid, inCgroup: id != "" && cgroupNames(cg, id)})
	}
	// Members: in the cgroup, or descendants of the main process.
	member := map[int]bool{}
	if initPID > 0 {
		member[initPID] = true
	}
	for _, c := range cands {
		if c.inCgroup {
			member[c.pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, c := range cands {
			if !member[c.pid] && member[c.ppid] && c.ppid > 0 {
				member[c.pid] = true
				changed = true
			}
		}
	}
	pids := make([]int, 0, len(member))
	for pid := range member {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	if len(pids) > maxStateProcs {
		st.notes = append(st.notes, fmt.Sprintf("%d processes, only the first %d listed", len(pids), maxStateProcs))
		pids = pids[:maxStateProcs]
	}
	users := readPasswd(filepath.Join(procRoot, strconv.Itoa(initPID), "root"))
	owners := map[uint64][]int{} // socket inode -> pids
	for _, pid := range pids {
		p, err := readProcess(procRoot, pid, boot)
		if err != nil {
			continue // exited meanwhile
		}
		p.User = users[p.EUID]
		st.procs = append(st.procs, p)
		for _, ino := range socketInodes(filepath.Join(procRoot, strconv.Itoa(pid), "fd")) {
			owners[ino] = append(owners[ino], pid)
		}
	}
	comm := map[int]string{}
	for _, p := range st.procs {
		comm[int(p.PID)] = p.Comm
	}
	if initPID > 0 {
		netDir := filepath.Join(procRoot, strconv.Itoa(initPID), "net")
		for _, proto := range []string{"tcp", "tcp6", "udp", "udp6", "raw", "raw6"} {
			socks, err := readInetSockets(filepath.Join(netDir, proto), proto)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				st.notes = append(st.notes, fmt.Sprintf("read %s sockets: %v", proto, err))
			}
			st.sockets = append(st.sockets, socks...)
		}
		socks, err := readUnixSockets(filepath.Join(netDir, "unix"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			st.notes = append(st.notes, fmt.Sprintf("read unix sockets: %v", err))
		}
		st.sockets = append(st.sockets, socks...)
	}
	// Unix sockets of the network namespace that no container process
	// holds belong to someone else (the runtime): leave them out.
	kept := st.sockets[:0]
	for _, s := range st.sockets {
		for _, pid := range owners[s.Inode] {
			s.PIDs = append(s.PIDs, uint32(pid))
			s.Comms = append(s.Comms, comm[pid])
		}
		if s.Proto == "unix" && len(s.PIDs) == 0 {
			continue
		}
		kept = append(kept, s)
	}
	st.sockets = kept
	return st
}

// cgroupNames reports whether a /proc/<pid>/cgroup file names the
// container: cgroup v1 /docker/<id>, v2 /system.slice/docker-<id>.scope,
// and the other runtimes' forms all contain the full id as a path element
// or after a dash.
func cgroupNames(cg []byte, id string) bool {
	if len(id) < 12 {
		return false
	}
	for _, line := range bytes.Split(cg, []byte{'\n'}) {
		parts := bytes.SplitN(line, []byte{':'}, 3)
		if len(parts) != 3 {
			continue
		}
		for _, el := range strings.Split(string(parts[2]), "/") {
			el = strings.TrimSuffix(el, ".scope")
			if el == id || strings.HasSuffix(el, "-"+id) {
				return true
			}
		}
	}
	return false
}

// parseStat returns ppid, tty_nr and starttime (clock ticks after boot)
// from /proc/<pid>/stat.
func parseStat(b []byte) (ppid int, tty uint32, start uint64, ok bool) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is state (field 3); ppid is field 4, tty_nr 7, starttime 22.
	if len(f) < 20 {
		return 0, 0, 0, false
	}
	p, err1 := strconv.Atoi(f[1])
	t, err2 := strconv.ParseInt(f[4], 10, 64)
	s, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return p, uint32(t), s, true
}

// clockTicks is USER_HZ, 100 on every Linux architecture riposte runs on.
const clockTicks = 100

func bootTime(procRoot string) time.Time {
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(s, 0).UTC()
			}
		}
	}
	return time.Time{}
}

func readProcess(procRoot string, pid int, boot time.Time) (capfile.Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return capfile.Process{}, err
	}
	ppid, tty, start, ok := parseStat(stat)
	if !ok {
		return capfile.Process{}, fmt.Errorf("parse %s/stat", dir)
	}
	p := capfile.Process{PID: uint32(pid), PPID: uint32(ppid), TTY: tty}
	if !boot.IsZero() {
		p.Started = boot.Add(time.Duration(start) * time.Second / clockTicks)
	}
	if i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')'); i >= 0 && j > i {
		p.Comm = string(stat[i+1 : j])
	}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		parseStatus(status, &p)
	}
	if cl, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(cl) > 0 {
		if len(cl) > maxStateArgs {
			cl, p.ArgsTruncated = cl[:maxStateArgs], true
		}
		p.Args = strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
	}
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	p.Cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
	return p, nil
}

// parseStatus fills ids and the pid inside the container from
// /proc/<pid>/status.
func parseStatus(b []byte, p *capfile.Process) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "Uid":
			if len(f) >= 2 {
				p.UID, p.EUID = atou32(f[0]), atou32(f[1])
			}
		case "Gid":
			if len(f) >= 1 {
				p.GID = atou32(f[0])
			}
		case "NSpid":
			if len(f) >= 1 {
				p.VPID = atou32(f[len(f)-1])
			}
		}
	}
}

func atou32(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// maxPasswd bounds how much of a container's /etc/passwd is read.
const maxPasswd = 1 << 20

// readPasswd maps uids to names from the /etc/passwd of the root
// directory root (a container's /proc/<pid>/root); empty when unreadable.
// The path is resolved inside that root (openat2 RESOLVE_IN_ROOT): a
// symbolic link the container planted cannot point riposte at a host file.
func readPasswd(root string) map[uint32]string {
	out := map[uint32]string{}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return out
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, "etc/passwd", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return out
	}
	f := os.NewFile(uintptr(fd), "passwd")
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxPasswd))
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) < 3 {
			continue
		}
		if uid, err := strconv.ParseUint(parts[2], 10, 32); err == nil {
			if _, dup := out[uint32(uid)]; !dup {
				out[uint32(uid)] = parts[0]
			}
		}
	}
	return out
}

// socketInodes lists the inodes of the sockets in an fd directory.
func socketInodes(fdDir string) []uint64 {
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil
	}
	var out []uint64
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue
		}
		if v, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
				out = append(out, ino)
			}
		}
	}
	return out
}

var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
	"07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}

func readInetSockets(name, proto string) ([]capfile.Socket, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parseInetSockets(b, proto)
}

// parseInetSockets parses /proc/net/{tcp,tcp6,udp,udp6,raw,raw6}:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
func parseInetSockets(b []byte, proto string) ([]capfile.Socket, error) {
	var out []capfile.Socket
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return out, fmt.Errorf("line %d: %d fields, want at least 10", i+1, len(f))
		}
		la, lp, err := parseHexAddr(f[1])
		if err != nil {
			return out, fmt.Errorf("line %d: local address: %w", i+1, err)
		}
		ra, rp, err := parseHexAddr(f[2])
		if err != nil {
			return out, fmt.Errorf("line %d: remote address: %w", i+1, err)
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return out, fmt.Errorf("line %d: uid %q", i+1, f[7])
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return out, fmt.Errorf("line %d: inode %q", i+1, f[9])
		}
		s := capfile.Socket{Proto: proto, LocalAddr: la, LocalPort: lp, RemoteAddr: ra, RemotePort: rp, UID: uint32(uid), Inode: ino}
		if strings.HasPrefix(proto, "tcp") {
			s.State = tcpStates[strings.ToUpper(f[3])]
			if s.State == "" {
				s.State = f[3]
			}
		} else if strings.EqualFold(f[3], "01") {
			s.State = "ESTABLISHED" // a connected UDP or raw socket
		}
		out = append(out, s)
	}
	return out, nil
}

// parseHexAddr parses "0100007F:0035" (IPv4) or the 32-hex-digit IPv6
// form: the address as the kernel's 32-bit words in host (little-endian)
// order, the port big-endian hex.
func parseHexAddr(s string) (string, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", 0, fmt.Errorf("%q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", 0, fmt.Errorf("%q: bad address", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr.Unmap().String(), uint16(port), nil
}

var unixStates = map[string]string{"01": "UNCONNECTED", "02": "CONNECTING", "03": "CONNECTED", "04": "DISCONNECTING"}
var unixTypes = map[string]string{"0001": "stream", "0002": "dgram", "0005": "seqpacket"}

func readUnixSockets(name string) ([]capfile.Socket, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parseUnixSockets(b)
}

// parseUnixSockets parses /proc/net/unix:
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/x.sock
func parseUnixSockets(b []byte) ([]capfile.Socket, error) {
	var out []capfile.Socket
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue
		}
		if len(f) < 7 {
			return out, fmt.Errorf("line %d: %d fields, want at least 7", i+1, len(f))
		}
		ino, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return out, fmt.Errorf("line %d: inode %q", i+1, f[6])
		}
		s := capfile.Socket{Proto: "unix", Inode: ino, State: unixStates[f[5]]}
		if f[3] == "00010000" {
			s.State = "LISTEN"
		}
		s.Type = unixTypes[f[4]]
		if len(f) >= 8 {
			s.Path = strings.Join(f[7:], " ")
		}
		out = append(out, s)
	}
	return out, nil
}

// Processes lists the processes of a running container (full id id, main
// process initPID) read from procRoot, as a capture's state header holds
// them: `riposte top` shows with them the processes it did not see start.
func Processes(procRoot, id string, initPID int) []capfile.Process {
	return readState(procRoot, id, initPID).procs
}
