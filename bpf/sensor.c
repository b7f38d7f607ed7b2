// SPDX-License-Identifier: GPL-2.0
//go:build ignore

// riposte's eBPF sensor. Every hook is a BTF-typed tracepoint (tp_btf): no
// kprobes, no fentry, no LSM, and no tracefs needed. Each hook writes one
// struct event into the ring buffer "events"; when the ring buffer is full
// the event is dropped and counted in the per-CPU array "drops", indexed by
// event type.
//
// Container attribution happens here, at event time: the name and kernfs id
// of the task's cgroup (v1: the pids controller's hierarchy; v2: the default
// hierarchy) travel in every event, so a process that lives for a
// millisecond is still attributed to its container.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

// Event types. Keep in sync with detector/sensor.
enum event_type {
	EV_EXEC = 1,
	EV_FORK = 2,
	EV_EXIT = 3,
	EV_OPEN = 4,
	EV_CONNECT = 5,
	EV_ACCEPT = 6,
	EV_BIND = 7,
	EV_LISTEN = 8,
	EV_SOCKET = 9,
	EV_PTRACE = 10,
	EV_MEMFD = 11,
	EV_SETUID = 12,
	EV_DUP = 13,
	EV_CHMOD = 14,
	EV_SYMLINK = 15,
	EV_LINK = 16,
	EV_UNLINK = 17,
	EV_RENAME = 18,
	EV_TRUNCATE = 19,
	EV_MOUNT = 20,
	EV_UMOUNT = 21,
	EV_SETNS = 22,
	EV_UNSHARE = 23,
	EV_CHDIR = 24,
	EV_MAX = 25,
};

// Event flags.
#define EF_TTY (1 << 0)          // the process has a controlling terminal
#define EF_EXE_UPPER (1 << 1)    // exec: the binary is in an overlayfs upper layer
#define EF_EXE_MEMFD (1 << 2)    // exec: the binary is a memfd
#define EF_STDIN_INET (1 << 3)   // exec: fd 0 is an AF_INET/AF_INET6 socket
#define EF_STDOUT_INET (1 << 4)  // exec: fd 1 is an AF_INET/AF_INET6 socket
#define EF_ARGS_TRUNC (1 << 5)   // exec: argv longer than the argv buffer
#define EF_NET (1 << 6)          // family/addresses/ports are set
#define EF_FD_NAME (1 << 7)      // path is the name of the file behind the fd in arg[2]
#define EF_NSFS (1 << 8)         // path is a namespace kind ("net"), arg[3] its inode number

#define ARGV_LEN 1024
#define PATH_LEN 256
#define CGROUP_LEN 128

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define NSFS_MAGIC 0x6e736673

// x86_64 syscall numbers.
#define NR_open 2
#define NR_truncate 76
#define NR_ftruncate 77
#define NR_rename 82
#define NR_rmdir 84
#define NR_link 86
#define NR_unlink 87
#define NR_symlink 88
#define NR_chmod 90
#define NR_fchmod 91
#define NR_mount 165
#define NR_umount2 166
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_fchmodat 268
#define NR_unshare 272
#define NR_setns 308
#define NR_renameat2 316
#define NR_fchmodat2 452
#define NR_chdir 80
#define NR_fchdir 81
#define NR_dup 32
#define NR_dup2 33
#define NR_socket 41
#define NR_connect 42
#define NR_accept 43
#define NR_bind 49
#define NR_listen 50
#define NR_creat 85
#define NR_ptrace 101
#define NR_setuid 105
#define NR_setgid 106
#define NR_setreuid 113
#define NR_setregid 114
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_setfsuid 122
#define NR_setfsgid 123
#define NR_openat 257
#define NR_accept4 288
#define NR_dup3 292
#define NR_memfd_create 319
#define NR_openat2 437

struct event {
	__u64 ts;        // bpf_ktime_get_boot_ns
	__u64 cgroup_id; // kernfs id of the attributed cgroup
	__u64 cgroup2_id; // kernfs id of the task's v2 (default hierarchy) cgroup
	__s64 ret;       // syscall return value; exit: exit code
	__u64 arg[4];    // numeric syscall arguments, per type
	__u32 type;
	__u32 syscall;
	__u32 pid;   // tgid
	__u32 tid;
	__u32 ppid;  // real parent's tgid
	__u32 vpid;  // pid in the process's own pid namespace
	__u32 uid;   // real uid
	__u32 gid;
	__u32 euid;
	__u32 tty;   // encoded tty device number, 0 for none
	__u32 flags; // EF_*
	__u32 argv_len;
	__u16 family;
	__u16 lport; // local port, host order
	__u16 rport; // remote port, host order
	__u16 sock_type;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[16];
	char cgroup[CGROUP_LEN];
	char path[PATH_LEN];
	char argv[ARGV_LEN]; // only in exec events: NUL-separated argv
};

// Every event but exec is reserved without the argv buffer.
#define SHORT_EVENT_SIZE (offsetof(struct event, argv))
// Events with a second path (symlink, link, rename, mount) carry it at the
// start of the argv buffer, and mount its file system type after it.
#define PATH2_EVENT_SIZE (SHORT_EVENT_SIZE + PATH_LEN + FSTYPE_LEN)
#define FSTYPE_LEN 32
#define AT_FDCWD -100

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// Set by the loader before the programs are loaded.
const volatile __u32 self_tgid = 0; // the detector's own events are ignored
const volatile __u32 cgroup_v2 = 0; // 1: attribute by the v2 default hierarchy
// 0: wake the reader for every event. Otherwise only exec events wake it at
// once; others wait for the reader's next poll, unless this many bytes are
// pending. Batching wakeups keeps the traced workload fast.
const volatile __u64 wakeup_bytes = 0;
// 1: with wakeup_bytes set, exec events still wake the reader at once.
const volatile __u32 exec_wakeup = 1;
// 1: read-only opens of shared libraries, the loader cache and locale data
// are dropped in the kernel (counted in map filtered): every exec makes a
// dozen of them, no rule looks at them, and not sending them is most of
// what keeps an exec-heavy workload fast.
const volatile __u32 skip_lib_reads = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_MAX);
	__type(key, __u32);
	__type(value, __u64);
} filtered SEC(".maps");

// Which events of each type the kernel sends, set by user space from what
// the loaded rules (and any active capture) need; indexed by event type,
// a mask of WANT_*. Exec, fork and exit are always sent (the process table
// needs them). An event not wanted is never reserved, only counted in
// filtered. A failed syscall is one with a negative result, but a connect
// in progress (EINPROGRESS) has not failed.
#define WANT_OK (1 << 0)     // successful calls (and connects in progress)
#define WANT_FAILED (1 << 1) // calls that returned -errno
#define EINPROGRESS 115
#define EAGAIN 11

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EV_MAX);
	__type(key, __u32);
	__type(value, __u32);
} wanted SEC(".maps");

static __always_inline void count_filtered(__u32 type)
{
	__u64 *n = bpf_map_lookup_elem(&filtered, &type);
	if (n)
		*n += 1;
}

// want reports whether an event of type with result ret is sent, and
// counts it as filtered when it is not. A non-blocking accept that found
// no connection (EAGAIN) is never sent: servers poll with it, so it would
// flood the ring buffer, and it says nothing; it is counted.
static __always_inline int want(__u32 type, long ret)
{
	if (type == EV_ACCEPT && ret == -EAGAIN) {
		count_filtered(type);
		return 0;
	}
	__u32 *mask = bpf_map_lookup_elem(&wanted, &type);
	__u32 bit = ret < 0 && !(type == EV_CONNECT && ret == -EINPROGRESS) ? WANT_FAILED : WANT_OK;
	if (mask && (*mask & bit))
		return 1;
	count_filtered(type);
	return 0;
}

static __always_inline void submit(struct event *e, int urgent)
{
	__u64 flags = 0;
	if (wakeup_bytes && !(urgent && exec_wakeup)) {
		flags = BPF_RB_NO_WAKEUP;
		if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void count_drop(__u32 type)
{
	__u64 *c = bpf_map_lookup_elem(&drops, &type);
	if (c)
		*c += 1;
}

static __always_inline struct event *reserve_short(__u32 type)
{
	struct event *e = bpf_ringbuf_reserve(&events, SHORT_EVENT_SIZE, 0);
	if (!e)
		count_drop(type);
	return e;
}

// The hooks are BTF-typed (tp_btf), so kernel structures are read with
// plain loads (the verifier turns them into fault-safe loads), which cost a
// fraction of a bpf_probe_read_kernel call. Variable-offset reads (arrays
// indexed at run time, container_of) still go through the helper.

static __always_inline __u32 tty_of(struct task_struct *t)
{
	struct tty_struct *tty = t->signal->tty;
	if (!tty)
		return 0;
	__u32 major = tty->driver->major;
	__u32 minor = tty->driver->minor_start + tty->index;
	// new_encode_dev, as in /proc/PID/stat's tty_nr.
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

static __always_inline __u32 vpid_of(struct task_struct *t)
{
	struct pid *p = t->group_leader->thread_pid;
	__u32 level = p->level;
	int nr = 0;
	if (level > 32)
		return 0;
	bpf_probe_read_kernel(&nr, sizeof(nr),
			      (void *)p + bpf_core_field_offset(struct pid, numbers) +
				      level * bpf_core_type_size(struct upid) +
				      bpf_core_field_offset(struct upid, nr));
	return nr;
}

static __always_inline void fill_cgroup(struct event *e, struct task_struct *t)
{
	struct kernfs_node *kn;
	// Also the v2 cgroup in v1 mode: on a hybrid host a container may sit
	// in the unified hierarchy only (a kubelet with the v2 layout).
	e->cgroup2_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	if (cgroup_v2) {
		kn = t->cgroups->dfl_cgrp->kn;
	} else {
		struct css_set *cs = t->cgroups;
		struct cgroup_subsys_state *css = 0;
		int id = bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id);
		if (id < 0 || id > 15)
			return;
		bpf_probe_read_kernel(&css, sizeof(css),
				      (void *)cs + bpf_core_field_offset(struct css_set, subsys) +
					      id * sizeof(void *));
		if (!css)
			return;
		kn = BPF_CORE_READ(css, cgroup, kn);
	}
	if (!kn)
		return;
	// kn is a plain scalar on the v1 path (read with the helper): read it
	// with the helper on both paths.
	e->cgroup_id = BPF_CORE_READ(kn, id);
	bpf_probe_read_kernel_str(e->cgroup, sizeof(e->cgroup), BPF_CORE_READ(kn, name));
}

// fill_header sets what every event carries, for task t.
static __always_inline void fill_header(struct event *e, struct task_struct *t, __u32 type)
{
	const struct cred *cred = t->cred;
	e->ts = bpf_ktime_get_boot_ns();
	e->cgroup_id = 0;
	e->cgroup2_id = 0;
	e->ret = 0;
	e->arg[0] = e->arg[1] = e->arg[2] = e->arg[3] = 0;
	e->type = type;
	e->syscall = 0;
	e->pid = t->tgid;
	e->tid = t->pid;
	e->ppid = t->real_parent->tgid;
	e->vpid = vpid_of(t);
	e->uid = cred->uid.val;
	e->gid = cred->gid.val;
	e->euid = cred->euid.val;
	e->tty = tty_of(t);
	e->flags = e->tty ? EF_TTY : 0;
	e->argv_len = 0;
	e->family = 0;
	e->lport = 0;
	e->rport = 0;
	e->sock_type = 0;
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	__builtin_memcpy(e->comm, t->comm, sizeof(e->comm));
	e->cgroup[0] = 0;
	e->path[0] = 0;
	fill_cgroup(e, t);
}

// file_of returns task t's open file for fd, or NULL.
static __always_inline struct file *file_of(struct task_struct *t, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	struct file **fds;
	struct file *f = 0;
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

// sock_of returns the socket behind fd, or NULL when fd is not a socket.
static __always_inline struct sock *sock_of(struct task_struct *t, long fd)
{
	struct file *f = file_of(t, fd);
	if (!f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *s = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(s, sk);
}

// fill_sock copies the addresses and ports of sk.
static __always_inline void fill_sock(struct event *e, struct sock *sk)
{
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	e->sock_type = BPF_CORE_READ(sk, sk_type);
	if (family != AF_INET && family != AF_INET6)
		return;
	e->flags |= EF_NET;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

// read_sockaddr copies a user sockaddr into the remote (remote=1) or local
// address of e. AF_UNIX paths go to e->path.
static __always_inline void read_sockaddr(struct event *e, const void *uaddr, int remote)
{
	__u16 family = 0;
	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr))
		return;
	e->family = family;
	if (family == AF_UNIX) {
		bpf_probe_read_user_str(e->path, sizeof(e->path), uaddr + 2);
		return;
	}
	if (family != AF_INET && family != AF_INET6)
		return;
	__u16 port = 0;
	bpf_probe_read_user(&port, sizeof(port), uaddr + 2);
	__u8 *addr = remote ? e->raddr : e->laddr;
	if (family == AF_INET)
		bpf_probe_read_user(addr, 4, uaddr + 4);
	else
		bpf_probe_read_user(addr, 16, uaddr + 8);
	if (remote)
		e->rport = bpf_ntohs(port);
	else
		e->lport = bpf_ntohs(port);
	e->flags |= EF_NET;
}

static __always_inline int is_upper(struct file *f)
{
	if (!f || !bpf_core_type_exists(struct ovl_inode))
		return 0;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (BPF_CORE_READ(ino, i_sb, s_magic) != OVERLAYFS_SUPER_MAGIC)
		return 0;
	struct ovl_inode *oi = (void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode);
	return BPF_CORE_READ(oi, __upperdentry) != 0;
}

static __always_inline int is_memfd(struct file *f)
{
	char name[8] = {};
	if (!f)
		return 0;
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
	return name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' &&
	       name[4] == 'd' && name[5] == ':';
}

static __always_inline int is_inet(struct sock *sk)
{
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (self_tgid && BPF_CORE_READ(p, tgid) == self_tgid)
		return 0;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(struct event), 0);
	if (!e) {
		count_drop(EV_EXEC);
		return 0;
	}
	fill_header(e, p, EV_EXEC);
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));

	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len >= ARGV_LEN) {
		len = ARGV_LEN - 1;
		e->flags |= EF_ARGS_TRUNC;
	}
	len &= ARGV_LEN - 1;
	if (len > 0 && bpf_probe_read_user(e->argv, len, (void *)start) == 0)
		e->argv_len = len;

	struct file *f = BPF_CORE_READ(bprm, file);
	struct file *script = BPF_CORE_READ(bprm, executable);
	if (is_upper(f) || is_upper(script))
		e->flags |= EF_EXE_UPPER;
	if (is_memfd(f) || is_memfd(script))
		e->flags |= EF_EXE_MEMFD;

	struct sock *in = sock_of(p, 0);
	struct sock *out = sock_of(p, 1);
	if (is_inet(in)) {
		e->flags |= EF_STDIN_INET;
		fill_sock(e, in);
	}
	if (is_inet(out)) {
		e->flags |= EF_STDOUT_INET;
		if (!(e->flags & EF_NET))
			fill_sock(e, out);
	}
	submit(e, 1);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	// Threads share the process; only new processes matter to the tree.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	if (self_tgid && BPF_CORE_READ(parent, tgid) == self_tgid)
		return 0;
	struct event *e = reserve_short(EV_FORK);
	if (!e)
		return 0;
	fill_header(e, child, EV_FORK);
	e->ppid = BPF_CORE_READ(parent, tgid);
	submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p, bool group_dead)
{
	if (!group_dead)
		return 0;
	if (self_tgid && BPF_CORE_READ(p, tgid) == self_tgid)
		return 0;
	struct event *e = reserve_short(EV_EXIT);
	if (!e)
		return 0;
	fill_header(e, p, EV_EXIT);
	e->ret = BPF_CORE_READ(p, exit_code);
	submit(e, 0);
	return 0;
}

// The syscall hooks run at sys_exit: the return value is known and the
// argument registers still hold what user space passed.
static __always_inline struct event *syscall_event(__u32 type, long nr, long ret)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (!want(type, ret))
		return 0;
	struct event *e = reserve_short(type);
	if (!e)
		return 0;
	fill_header(e, t, type);
	e->syscall = nr;
	e->ret = ret;
	return e;
}

static __always_inline int has_prefix(const char *s, const char *pre, int n)
{
	for (int i = 0; i < 24; i++) {
		if (i >= n)
			return 1;
		if (s[i] != pre[i])
			return 0;
	}
	return 1;
}

// A read-only open of a library, the loader cache or locale data.
static __always_inline int lib_read(const char *p, __u64 flags)
{
	if ((flags & 03) != 0 || (flags & (0100 | 01000)) != 0) // O_ACCMODE, O_CREAT, O_TRUNC
		return 0;
	return has_prefix(p, "/lib/", 5) || has_prefix(p, "/lib64/", 7) || has_prefix(p, "/usr/lib/", 9) ||
	       has_prefix(p, "/usr/lib64/", 11) || has_prefix(p, "/etc/ld.so.cache", 16) ||
	       has_prefix(p, "/usr/share/locale/", 18) || has_prefix(p, "/usr/lib/locale/", 16);
}

static __always_inline int on_open(struct pt_regs *regs, long nr, long ret)
{
	const char *name;
	__u64 flags, mode;
	__s64 dfd = -100; // AT_FDCWD
	if (ret < 0)
		return 0;
	switch (nr) {
	case NR_open:
		name = (const char *)regs->di;
		flags = regs->si;
		mode = regs->dx;
		break;
	case NR_creat:
		name = (const char *)regs->di;
		flags = 01 | 0100 | 01000; // O_WRONLY|O_CREAT|O_TRUNC
		mode = regs->si;
		break;
	case NR_openat2: {
		struct open_how how = {};
		dfd = (int)regs->di;
		name = (const char *)regs->si;
		bpf_probe_read_user(&how, sizeof(how), (void *)regs->dx);
		flags = how.flags;
		mode = how.mode;
		break;
	}
	default: // openat
		dfd = (int)regs->di;
		name = (const char *)regs->si;
		flags = regs->dx;
		mode = regs->r10;
	}
	struct event *e = syscall_event(EV_OPEN, nr, ret);
	if (!e)
		return 0;
	e->arg[0] = flags;
	e->arg[1] = mode;
	e->arg[2] = dfd;
	bpf_probe_read_user_str(e->path, sizeof(e->path), name);
	if (skip_lib_reads && lib_read(e->path, flags)) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		count_filtered(EV_OPEN);
		return 0;
	}
	submit(e, 0);
	return 0;
}

static __always_inline int on_net(struct pt_regs *regs, long nr, long ret)
{
	struct task_struct *t = bpf_get_current_task_btf();
	long fd = regs->di;
	struct event *e;
	switch (nr) {
	case NR_connect:
		// Failed connects too (ret is -errno): a refused or unreachable
		// destination is how port scans and dead beacons look.
		if (!(e = syscall_event(EV_CONNECT, nr, ret)))
			return 0;
		fill_sock(e, sock_of(t, fd));
		// The destination the caller asked for wins over the socket's view.
		read_sockaddr(e, (void *)regs->si, 1);
		e->arg[0] = fd;
		break;
	case NR_accept:
	case NR_accept4:
		// Failed accepts too (ret is -errno), but for EAGAIN (see want).
		// A failed accept has no connection: the listening socket's
		// address is what it carries.
		if (!(e = syscall_event(EV_ACCEPT, nr, ret)))
			return 0;
		fill_sock(e, sock_of(t, ret >= 0 ? ret : fd));
		e->arg[0] = fd;
		break;
	case NR_bind:
		if (ret < 0)
			return 0;
		if (!(e = syscall_event(EV_BIND, nr, ret)))
			return 0;
		fill_sock(e, sock_of(t, fd));
		read_sockaddr(e, (void *)regs->si, 0);
		e->arg[0] = fd;
		break;
	case NR_listen:
		if (ret < 0)
			return 0;
		if (!(e = syscall_event(EV_LISTEN, nr, ret)))
			return 0;
		fill_sock(e, sock_of(t, fd));
		e->arg[0] = fd;
		e->arg[1] = regs->si;
		break;
	default: // socket
		if (ret < 0)
			return 0;
		if (!(e = syscall_event(EV_SOCKET, nr, ret)))
			return 0;
		e->arg[0] = regs->di; // domain
		e->arg[1] = regs->si; // type
		e->arg[2] = regs->dx; // protocol
		e->family = e->arg[0];
		e->sock_type = e->arg[1] & 0xf;
	}
	submit(e, 0);
	return 0;
}

static __always_inline int on_dup(struct pt_regs *regs, long nr, long ret)
{
	// Only a socket landing on stdin, stdout or stderr is interesting.
	if (ret < 0 || ret > 2)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	long oldfd = regs->di;
	struct sock *sk = sock_of(t, oldfd);
	if (!is_inet(sk))
		return 0;
	struct event *e = syscall_event(EV_DUP, nr, ret);
	if (!e)
		return 0;
	e->arg[0] = oldfd;
	e->arg[1] = ret;
	fill_sock(e, sk);
	submit(e, 0);
	return 0;
}

static __always_inline int on_args(struct pt_regs *regs, __u32 type, long nr, long ret)
{
	struct event *e = syscall_event(type, nr, ret);
	if (!e)
		return 0;
	e->arg[0] = regs->di;
	e->arg[1] = regs->si;
	e->arg[2] = regs->dx;
	e->arg[3] = regs->r10;
	if (type == EV_MEMFD) {
		bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)e->arg[0]);
		e->arg[0] = e->arg[1]; // flags
		e->arg[1] = 0;
	}
	submit(e, 0);
	return 0;
}

// fd_name copies the name of the file behind fd into e->path: the last
// component of its path or, for a namespace file, its kind ("mnt", with the
// inode number in arg[3]).
static __always_inline void fd_name(struct event *e, struct task_struct *t, long fd)
{
	struct file *f = file_of(t, fd);
	e->arg[2] = fd;
	e->flags |= EF_FD_NAME;
	if (!f)
		return;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (BPF_CORE_READ(ino, i_sb, s_magic) == NSFS_MAGIC) {
		// A namespace file's dentry has no name of its own (nsfs makes
		// one up on demand): read the kind and inode from the namespace.
		struct ns_common *ns = BPF_CORE_READ(ino, i_private);
		bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(ns, ops, name));
		e->arg[3] = BPF_CORE_READ(ns, inum);
		e->flags |= EF_NSFS;
		return;
	}
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(f, f_path.dentry, d_name.name));
}

// path_event is a file event with one path: chmod, unlink, truncate,
// umount, chdir. dfd is the directory fd the path is relative to (AT_FDCWD);
// a path of 0 takes the name of the file behind fd instead.
static __always_inline int path_event(__u32 type, long nr, long ret, const char *path, long dfd, long fd,
				      __u64 a0, __u64 a1)
{
	struct event *e = syscall_event(type, nr, ret);
	if (!e)
		return 0;
	e->arg[0] = a0;
	e->arg[1] = a1;
	if (path) {
		e->arg[2] = dfd;
		bpf_probe_read_user_str(e->path, sizeof(e->path), path);
	} else if (fd >= 0) {
		fd_name(e, bpf_get_current_task_btf(), fd);
	}
	submit(e, 0);
	return 0;
}

// path2_event is a file event with two paths: symlink and link (path: the
// new link, second path: its target), rename (old, new), mount (source,
// target, and the file system type). The second path and the type travel
// in the argv buffer.
static __always_inline int path2_event(__u32 type, long nr, long ret, const char *path, long dfd,
				       const char *path2, long dfd2, const char *fstype, __u64 a0)
{
	if (!want(type, ret))
		return 0;
	struct event *e = bpf_ringbuf_reserve(&events, PATH2_EVENT_SIZE, 0);
	if (!e) {
		count_drop(type);
		return 0;
	}
	fill_header(e, bpf_get_current_task_btf(), type);
	e->syscall = nr;
	e->ret = ret;
	e->arg[0] = a0;
	e->arg[2] = dfd;
	e->arg[3] = dfd2;
	e->argv[0] = 0;
	e->argv[PATH_LEN] = 0;
	if (path)
		bpf_probe_read_user_str(e->path, sizeof(e->path), path);
	if (path2)
		bpf_probe_read_user_str(e->argv, PATH_LEN, path2);
	if (fstype)
		bpf_probe_read_user_str(e->argv + PATH_LEN, FSTYPE_LEN, fstype);
	submit(e, 0);
	return 0;
}

// on_file records changes to the file system tree and to namespaces.
// Failed file changes are not sent (a failed chmod changed nothing), but
// failed mount, umount, setns and unshare are: trying is the signal.
static __always_inline int on_file(struct pt_regs *regs, __u32 type, long nr, long ret)
{
	if (ret < 0 && type != EV_MOUNT && type != EV_UMOUNT && type != EV_SETNS && type != EV_UNSHARE)
		return 0;
	switch (nr) {
	case NR_chmod:
		return path_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, 0, regs->si, 0);
	case NR_fchmod:
		return path_event(type, nr, ret, 0, 0, regs->di, regs->si, 0);
	case NR_fchmodat:
	case NR_fchmodat2:
		return path_event(type, nr, ret, (const char *)regs->si, (int)regs->di, 0, regs->dx, 0);
	case NR_unlink:
	case NR_rmdir:
		return path_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, 0, nr == NR_rmdir ? 0x200 : 0, 0);
	case NR_unlinkat:
		return path_event(type, nr, ret, (const char *)regs->si, (int)regs->di, 0, regs->dx, 0);
	case NR_truncate:
		return path_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, 0, regs->si, 0);
	case NR_ftruncate:
		return path_event(type, nr, ret, 0, 0, regs->di, regs->si, 0);
	case NR_umount2:
		return path_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, 0, regs->si, 0);
	case NR_setns:
		return path_event(type, nr, ret, 0, 0, regs->di, regs->si, 0);
	case NR_unshare:
		return path_event(type, nr, ret, 0, 0, -1, regs->di, 0);
	case NR_chdir: // the working directory, so that relative paths resolve
		return path_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, 0, 0, 0);
	case NR_fchdir:
		return path_event(type, nr, ret, 0, 0, regs->di, 0, 0);
	case NR_symlink:
		return path2_event(type, nr, ret, (const char *)regs->si, AT_FDCWD, (const char *)regs->di, AT_FDCWD, 0, 0);
	case NR_symlinkat:
		return path2_event(type, nr, ret, (const char *)regs->dx, (int)regs->si, (const char *)regs->di, AT_FDCWD, 0, 0);
	case NR_link:
		return path2_event(type, nr, ret, (const char *)regs->si, AT_FDCWD, (const char *)regs->di, AT_FDCWD, 0, 0);
	case NR_linkat:
		return path2_event(type, nr, ret, (const char *)regs->r10, (int)regs->dx, (const char *)regs->si,
				   (int)regs->di, 0, regs->r8);
	case NR_rename:
		return path2_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, (const char *)regs->si, AT_FDCWD, 0, 0);
	case NR_renameat:
	case NR_renameat2:
		return path2_event(type, nr, ret, (const char *)regs->si, (int)regs->di, (const char *)regs->r10,
				   (int)regs->dx, 0, nr == NR_renameat2 ? regs->r8 : 0);
	default: // mount
		return path2_event(type, nr, ret, (const char *)regs->di, AT_FDCWD, (const char *)regs->si, AT_FDCWD,
				   (const char *)regs->dx, regs->r10);
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	__u32 type;
	switch (nr) {
	case NR_open:
	case NR_openat:
	case NR_openat2:
	case NR_creat:
		type = EV_OPEN;
		break;
	case NR_connect:
	case NR_accept:
	case NR_accept4:
	case NR_bind:
	case NR_listen:
	case NR_socket:
		type = EV_CONNECT; // any network event
		break;
	case NR_dup:
	case NR_dup2:
	case NR_dup3:
		type = EV_DUP;
		break;
	case NR_ptrace:
		type = EV_PTRACE;
		break;
	case NR_memfd_create:
		type = EV_MEMFD;
		break;
	case NR_setuid:
	case NR_setgid:
	case NR_setreuid:
	case NR_setregid:
	case NR_setresuid:
	case NR_setresgid:
	case NR_setfsuid:
	case NR_setfsgid:
		type = EV_SETUID;
		break;
	case NR_chmod:
	case NR_fchmod:
	case NR_fchmodat:
	case NR_fchmodat2:
		type = EV_CHMOD;
		break;
	case NR_symlink:
	case NR_symlinkat:
		type = EV_SYMLINK;
		break;
	case NR_link:
	case NR_linkat:
		type = EV_LINK;
		break;
	case NR_unlink:
	case NR_unlinkat:
	case NR_rmdir:
		type = EV_UNLINK;
		break;
	case NR_rename:
	case NR_renameat:
	case NR_renameat2:
		type = EV_RENAME;
		break;
	case NR_truncate:
	case NR_ftruncate:
		type = EV_TRUNCATE;
		break;
	case NR_mount:
		type = EV_MOUNT;
		break;
	case NR_umount2:
		type = EV_UMOUNT;
		break;
	case NR_setns:
		type = EV_SETNS;
		break;
	case NR_unshare:
		type = EV_UNSHARE;
		break;
	case NR_chdir:
	case NR_fchdir:
		type = EV_CHDIR;
		break;
	default:
		return 0;
	}
	if (self_tgid && (bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	switch (type) {
	case EV_OPEN:
		return on_open(regs, nr, ret);
	case EV_CONNECT:
		return on_net(regs, nr, ret);
	case EV_DUP:
		return on_dup(regs, nr, ret);
	case EV_PTRACE:
	case EV_MEMFD:
	case EV_SETUID:
		return on_args(regs, type, nr, ret);
	default:
		return on_file(regs, type, nr, ret);
	}
}
