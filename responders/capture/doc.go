// Package capture is riposte's capture responder: the capture.start action
// records what one container does — its system calls, from the eBPF
// detector's per-container subscription, and its network traffic, read with
// AF_PACKET sockets opened inside its network namespace — into the
// incident's evidence directory, for later analysis with `riposte capture
// read` (package capview), tshark or Wireshark.
//
// # What a capture writes
//
//	<evidence_dir>/<incident>/<container short id>/capture-<UTC time>/
//	  syscalls.jsonl.gz   state header (process tree, open sockets) then every event; format in package capfile
//	  network.pcapng      every interface that is up in the container's netns (eth0, lo, ...)
//	  manifest.json       written last: SHA-256 and size of each file, how the capture ended
//
// The pcapng section header's comment and every interface description
// block name the container (id, name, image), the incident and the capture
// id; packets carry their direction (EPB flags); at the end an interface
// statistics block per interface gives start and end time, the packets the
// socket received and the kernel dropped (isb_ifrecv, isb_osdrop), the
// packets written (isb_usrdeliv) and, as its comment, why the capture
// ended. Loopback packets are kept once, as tcpdump does. A container on
// the host's network namespace (--network host) gets no pcap: it would
// record the whole host; the manifest's notes say so.
//
// # Limits
//
// duration (default 30s, capped by Config.MaxDuration) and max_bytes
// (default 100MiB, capped by Config.MaxBytes) end a capture cleanly, as do
// the container's main process ending, Stop and Close. max_bytes bounds the
// syscall file and the pcap together (the manifest, about 1KiB, comes on
// top): records are admitted against a worst-case compressed size, room for
// the trailers is kept aside, and the first record or packet that does not
// fit ends the capture, marked "truncated": true with reason "max_bytes" in
// the syscall file's trailer, the pcap's statistics comment and the
// manifest. Events the detector lost while the capture ran (kernel ring
// buffer, queue, slow subscriber; detector-wide counters) are in the
// trailer's "lost".
//
// # Background captures and the journal
//
// The engine runs a playbook's actions in order, each under a timeout, so a
// 60s capture must not hold the next action hostage. Run therefore
// validates, checks the guardrail, inspects the container, creates the
// directory, subscribes to the detector, writes the state header and opens
// the packet sockets — every error surfaces from Run — then returns while
// the capture records in the background: the Result names the capture id,
// the directory, the files and when it ends, but has no hashes yet. When
// the capture ends, its files are fsynced, hashed and listed in
// manifest.json, and Deps.OnFinish receives the final Result (SHA256 = the
// manifest's hash, Evidence = every file with its hash) for the journal;
// Wait(ctx, captureID) returns the same. With the parameter wait: true, Run
// blocks and returns the final Result itself (`riposte act`, scripts).
//
// One capture per container at a time: capture.start on a container that
// is already being captured starts nothing and succeeds with the note
// "capture already running, ends at …" (with wait: true it waits for the
// running one). A protected container (Deps.Guard, the docker responder's
// rules) is refused with an error wrapping actions.ErrProtected before
// anything is touched.
//
// # Concurrency and ownership
//
// A Capture is safe for concurrent use. It owns its sessions' files,
// sockets and subscriptions, and releases them when each capture ends;
// Close stops every running capture, waits until they are sealed and
// refuses new ones. It does not own its Deps: the caller closes the Docker
// client after Close, and stops the detector after Close (a detector that
// stops first ends the syscall part of running captures with reason
// "detector_stopped").
//
// Needs root: CAP_NET_RAW for the packet sockets, CAP_SYS_ADMIN to enter the
// container's network namespace (setns on a locked OS thread that returns
// to riposte's namespace before it is reused), read access to /proc.
package capture
