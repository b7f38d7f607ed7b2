package sensor

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/riposte-sec/riposte/bpf"
	"github.com/riposte-sec/riposte/detector/event"
)

func raw(e *bpf.SensorEvent, n int) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(e)), recordSize)
	return append([]byte(nil), b[:n]...)
}

func setStr(dst []int8, s string) {
	for i := range s {
		dst[i] = int8(s[i])
	}
}

func TestDecode(t *testing.T) {
	cg := "3f4e8c1a9b2d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	base := func(typ uint32) bpf.SensorEvent {
		var e bpf.SensorEvent
		e.Type, e.Ts, e.Pid, e.Tid, e.Ppid, e.Vpid, e.Uid, e.Euid, e.CgroupId = typ, 1000, 42, 43, 1, 7, 1000, 0, 99
		setStr(e.Comm[:], "cat")
		setStr(e.Cgroup[:], cg)
		return e
	}
	exec := base(1)
	setStr(exec.Path[:], "/bin/cat")
	argv := "cat\x00/etc/shadow\x00"
	setStr(exec.Argv[:], argv)
	exec.ArgvLen = uint32(len(argv))
	exec.Flags = flagExeUpper | flagStdinInet | flagNet
	exec.Family, exec.SockType, exec.Rport, exec.Lport = 2, 1, 4444, 40000
	copy(exec.Raddr[:], []byte{10, 0, 0, 9})
	copy(exec.Laddr[:], []byte{172, 17, 0, 2})

	open := base(4)
	open.Syscall, open.Ret, open.Arg = 257, 3, [4]uint64{0o2000001, 0o644, uint64(0xffffffffffffff9c)}
	setStr(open.Path[:], "/etc/passwd")

	conn := base(5)
	conn.Syscall, conn.Ret, conn.Arg[0] = 42, -115, 5
	conn.Flags, conn.Family, conn.SockType, conn.Rport = flagNet, 10, 1, 443
	conn.Raddr = [16]uint8{0x20, 0x01, 0x0d, 0xb8, 15: 1}

	setuid := base(12)
	setuid.Syscall, setuid.Arg = 117, [4]uint64{0, 0xffffffff, 0xffffffff}

	chmod := base(14)
	chmod.Syscall, chmod.Arg = 268, [4]uint64{0o104755, 0, uint64(0xffffffffffffff9c)}
	setStr(chmod.Path[:], "tool")

	symlink := base(15)
	symlink.Syscall, symlink.Arg = 266, [4]uint64{0, 0, 5, uint64(0xffffffffffffff9c)}
	setStr(symlink.Path[:], "shadow-link")
	setStr(symlink.Argv[:], "/etc/shadow")

	mount := base(20)
	mount.Syscall, mount.Ret, mount.Arg = 165, -1, [4]uint64{0x1000, 0, uint64(0xffffffffffffff9c)}
	setStr(mount.Path[:], "/dev/sda1")
	setStr(mount.Argv[:], "/mnt")
	setStr(mount.Argv[path2Len:], "ext4")

	setns := base(22)
	setns.Syscall, setns.Flags, setns.Arg = 308, flagFDName|flagNSFS, [4]uint64{0x40000000, 0, 3, 4026532281}
	setStr(setns.Path[:], "net")

	tests := []struct {
		name  string
		raw   []byte
		check func(t *testing.T, r Record)
	}{
		{"exec", raw(&exec, recordSize), func(t *testing.T, r Record) {
			e := r.Event
			if e.Type != event.Exec || e.Exe != "/bin/cat" || !reflect.DeepEqual(e.Args, []string{"cat", "/etc/shadow"}) ||
				!e.ExeUpperLayer || !e.StdinNet || e.StdoutNet || e.RemoteAddr != "10.0.0.9" || e.RemotePort != 4444 ||
				e.LocalAddr != "172.17.0.2" || e.Family != "inet" || e.SockType != "stream" {
				t.Fatalf("%+v", e)
			}
			if r.CgroupName != cg || r.CgroupID != 99 || e.Container.Cgroup != cg || e.PID != 42 || e.TID != 43 || e.VPID != 7 || e.UID != 1000 || e.EUID != 0 {
				t.Fatalf("header: %+v", r)
			}
			if !e.Time.Equal(time.Unix(0, 1000+5)) {
				t.Fatalf("time %v", e.Time)
			}
		}},
		{"exec record without argv", raw(&exec, shortSize), func(t *testing.T, r Record) {
			if r.Event.Args != nil {
				t.Fatalf("args %q from a short record", r.Event.Args)
			}
		}},
		{"openat", raw(&open, shortSize), func(t *testing.T, r Record) {
			e := r.Event
			if e.Type != event.Open || e.Syscall != "openat" || e.Path != "/etc/passwd" || e.Flags != 0o2000001 || e.Mode != 0o644 || e.Ret != 3 || e.FD != 0 {
				t.Fatalf("%+v", e)
			}
		}},
		{"connect in progress, v6", raw(&conn, shortSize), func(t *testing.T, r Record) {
			e := r.Event
			if e.Type != event.Connect || e.Ret != -115 || e.RemoteAddr != "2001:db8::1" || e.RemotePort != 443 || e.Family != "inet6" || e.FD != 5 {
				t.Fatalf("%+v", e)
			}
		}},
		{"fchmodat keeps the mode bits, relative path", raw(&chmod, shortSize), func(t *testing.T, r Record) {
			if e := r.Event; e.Type != event.Chmod || e.Syscall != "fchmodat" || e.Mode != 0o4755 || e.Path != "tool" || e.FD != 0 {
				t.Fatalf("%+v", e)
			}
		}},
		{"symlinkat carries its target", raw(&symlink, shortSize+path2Len+fstypeLen), func(t *testing.T, r Record) {
			if e := r.Event; e.Type != event.Symlink || e.Path != "shadow-link" || e.Target != "/etc/shadow" || e.FD != 5 {
				t.Fatalf("%+v", e)
			}
		}},
		{"symlink record cut before its target", raw(&symlink, shortSize), func(t *testing.T, r Record) {
			if e := r.Event; e.Path != "shadow-link" || e.Target != "" {
				t.Fatalf("%+v", e)
			}
		}},
		{"failed mount", raw(&mount, shortSize+path2Len+fstypeLen), func(t *testing.T, r Record) {
			if e := r.Event; e.Type != event.Mount || e.Ret != -1 || e.Path != "/dev/sda1" || e.Target != "/mnt" || e.FSType != "ext4" || e.Flags != 0x1000 {
				t.Fatalf("%+v", e)
			}
		}},
		{"setns names its namespace file", raw(&setns, shortSize), func(t *testing.T, r Record) {
			if e := r.Event; e.Type != event.Setns || e.Path != "net:[4026532281]" || e.FD != 3 || e.Flags != 0x40000000 {
				t.Fatalf("%+v", e)
			}
		}},
		{"setresuid keeps -1", raw(&setuid, shortSize), func(t *testing.T, r Record) {
			if e := r.Event; e.Syscall != "setresuid" || !reflect.DeepEqual(e.SysArgs, []int64{0, -1, -1}) {
				t.Fatalf("%+v", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			if err := Decode(tt.raw, 5, &r); err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
	for name, b := range map[string][]byte{
		"too short":    make([]byte, 10),
		"unknown type": raw(&bpf.SensorEvent{Type: 99}, shortSize),
		"zero type":    make([]byte, shortSize),
	} {
		t.Run(name, func(t *testing.T) {
			var r Record
			if err := Decode(b, 0, &r); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// FuzzDecode: no record, however malformed, makes Decode panic.
func FuzzDecode(f *testing.F) {
	e := bpf.SensorEvent{Type: 1, ArgvLen: 5000}
	f.Add(raw(&e, recordSize))
	f.Add(raw(&e, shortSize))
	f.Add([]byte{1, 2, 3})
	for _, typ := range []uint32{14, 15, 20, 22} {
		e := bpf.SensorEvent{Type: typ, Flags: flagFDName}
		setStr(e.Argv[:], "/etc/shadow")
		f.Add(raw(&e, shortSize+path2Len+fstypeLen))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		_ = Decode(b, 0, &r)
	})
}
