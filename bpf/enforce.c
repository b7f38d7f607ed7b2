// SPDX-License-Identifier: GPL-2.0
//go:build ignore

// riposte's in-kernel enforcement: a second program on the exec tracepoint,
// apart from the sensor, that signals a process whose exec matches a rule
// marked `enforce:` in the rule file. tp_btf/sched_process_exec runs in the
// task that called execve, after the new program is mapped and before the
// task returns to user space: a signal sent with bpf_send_signal is pending
// when the task leaves the kernel, so the new program never runs an
// instruction.
//
// What the kernel decides alone: the exec'd program's name (comm, as
// proc.name) or path (as exec'd, as proc.exepath) is in a map, and the task
// is in a cgroup user space armed (a container it checked is not
// protected). Everything else stays in user space: the program reports each
// decision in the LRU map "records", keyed by pid, where the
// detector picks it up with the sensor's exec event of the same pid.
//
// Guards, in order: a global mode (off, dry run: record "would signal"
// without signalling, armed), the armed-cgroup map (fail closed: a cgroup
// nobody armed is never signalled), and a budget of signals per window
// counted here, so that a rule gone wrong stops after N kills even when
// user space is slow.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define ENF_PATH_LEN 256
#define ENF_COMM_LEN 16

// Modes (settings.mode).
#define MODE_OFF 0
#define MODE_DRY_RUN 1
#define MODE_ARMED 2

// Outcomes (enforce_record.outcome). Keep in sync with detector/enforce.
#define OUT_SIGNALLED 1 // bpf_send_signal returned 0
#define OUT_DRY_RUN 2   // dry run: would have signalled
#define OUT_BUDGET 3    // the window's budget was spent: not signalled
#define OUT_FAILED 4    // bpf_send_signal returned an error (in err)

// Counters (stats index).
#define ST_MATCHED 0
#define ST_SIGNALLED 1
#define ST_DRY_RUN 2
#define ST_BUDGET 3
#define ST_FAILED 4
#define ST_UNARMED 5 // matched in a cgroup nobody armed: nothing done
#define ST_MAX 6

struct enforce_config {
	__u32 mode;
	__u32 budget;    // signals per window; 0: no limit
	__u64 window_ns; // budget window
};

struct enforce_verdict {
	__u32 signal; // SIGKILL (9) or SIGSTOP (19)
	__u32 rule;   // index of the rule in the detector's enforce table
};

struct enforce_budget {
	__u64 start; // boot ns the window began
	__u64 count; // signals in it
};

struct enforce_record {
	__u64 ts;        // bpf_ktime_get_boot_ns at the exec tracepoint
	__u64 exit_ts;   // when the task exited (0: not yet); the signal's effect
	__u64 cgroup_id; // the armed cgroup id that matched
	__s32 err;       // bpf_send_signal's return
	__u32 pid;       // tgid
	__u32 signal;
	__u32 rule;
	__u32 outcome; // OUT_*
	__u32 by_path; // 1: matched by path, 0: by name
	char comm[ENF_COMM_LEN];
	char path[ENF_PATH_LEN];
};

const volatile __u32 self_tgid = 0; // the detector is never signalled
const volatile __u32 cgroup_v2 = 0; // 1: the armed ids are v2 cgroup ids

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enforce_config);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enforce_budget);
} spent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, char[ENF_COMM_LEN]);
	__type(value, struct enforce_verdict);
} names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, char[ENF_PATH_LEN]);
	__type(value, struct enforce_verdict);
} paths SEC(".maps");

// Armed cgroups: kernfs id of the cgroup the sensor attributes by (v1: the
// pids controller's; v2: the default hierarchy's), or of the v2 cgroup on a
// hybrid host, -> 1.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} armed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct enforce_record);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// Scratch for the record being built (too large for the stack).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enforce_record);
} scratch SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &i);
	if (c)
		*c += 1;
}

// cgroup_ids returns the task's cgroup id in the sensor's hierarchy and its
// v2 cgroup id.
static __always_inline void cgroup_ids(struct task_struct *t, __u64 *primary, __u64 *v2)
{
	*v2 = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	*primary = *v2;
	if (cgroup_v2)
		return;
	struct cgroup_subsys_state *css = 0;
	int id = bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id);
	if (id < 0 || id > 15)
		return;
	bpf_probe_read_kernel(&css, sizeof(css),
			      (void *)t->cgroups + bpf_core_field_offset(struct css_set, subsys) + id * sizeof(void *));
	if (css)
		*primary = BPF_CORE_READ(css, cgroup, kn, id);
}

// spend takes one signal from the window's budget; 0 when it is spent. The
// window restarts with a compare-and-swap on its start, so two CPUs racing
// at a window's edge may each let one signal through: the budget is exact
// within a window, off by at most one per CPU at its edge.
static __always_inline int spend(struct enforce_config *cfg, __u64 now)
{
	if (cfg->budget == 0)
		return 1;
	__u32 k = 0;
	struct enforce_budget *b = bpf_map_lookup_elem(&spent, &k);
	if (!b)
		return 0;
	__u64 start = b->start;
	if (start == 0 || now - start >= cfg->window_ns) {
		if (__sync_val_compare_and_swap(&b->start, start, now) == start)
			__sync_lock_test_and_set(&b->count, 0);
	}
	__u64 n = __sync_fetch_and_add(&b->count, 1) + 1;
	return n <= cfg->budget;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(enforce_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 k = 0;
	struct enforce_config *cfg = bpf_map_lookup_elem(&settings, &k);
	if (!cfg || cfg->mode == MODE_OFF)
		return 0;
	__u32 tgid = p->tgid;
	if (self_tgid && tgid == self_tgid)
		return 0;
	struct enforce_record *r = bpf_map_lookup_elem(&scratch, &k);
	if (!r)
		return 0;
	__builtin_memset(r->comm, 0, sizeof(r->comm));
	__builtin_memcpy(r->comm, p->comm, sizeof(r->comm));
	r->by_path = 0;
	struct enforce_verdict *v = bpf_map_lookup_elem(&names, r->comm);
	if (!v) {
		// The path is read into a zeroed key: the map compares all of it.
		__builtin_memset(r->path, 0, sizeof(r->path));
		bpf_probe_read_kernel_str(r->path, sizeof(r->path), BPF_CORE_READ(bprm, filename));
		v = bpf_map_lookup_elem(&paths, r->path);
		if (!v)
			return 0;
		r->by_path = 1;
	} else {
		bpf_probe_read_kernel_str(r->path, sizeof(r->path), BPF_CORE_READ(bprm, filename));
	}
	count(ST_MATCHED);
	__u64 primary = 0, v2 = 0;
	cgroup_ids(p, &primary, &v2);
	__u64 cg = primary;
	if (!bpf_map_lookup_elem(&armed, &cg)) {
		cg = v2;
		if (!bpf_map_lookup_elem(&armed, &cg)) {
			count(ST_UNARMED);
			return 0;
		}
	}
	r->ts = bpf_ktime_get_boot_ns();
	r->exit_ts = 0;
	r->cgroup_id = cg;
	r->err = 0;
	r->pid = tgid;
	r->signal = v->signal;
	r->rule = v->rule;
	if (cfg->mode != MODE_ARMED) {
		r->outcome = OUT_DRY_RUN;
		count(ST_DRY_RUN);
	} else if (!spend(cfg, r->ts)) {
		r->outcome = OUT_BUDGET;
		count(ST_BUDGET);
	} else {
		// current is p: the signal goes to the whole thread group and is
		// taken on the way back to user space.
		r->err = bpf_send_signal(v->signal);
		r->outcome = r->err ? OUT_FAILED : OUT_SIGNALLED;
		count(r->err ? ST_FAILED : ST_SIGNALLED);
	}
	bpf_map_update_elem(&records, &tgid, r, BPF_ANY);
	return 0;
}

// enforce_exit stamps the exit of a process this program decided about:
// exit_ts - ts is how long the signal took to end it.
SEC("tp_btf/sched_process_exit")
int BPF_PROG(enforce_exit, struct task_struct *p, bool group_dead)
{
	if (!group_dead)
		return 0;
	__u32 tgid = p->tgid;
	struct enforce_record *r = bpf_map_lookup_elem(&records, &tgid);
	if (r && r->exit_ts == 0)
		r->exit_ts = bpf_ktime_get_boot_ns();
	return 0;
}
