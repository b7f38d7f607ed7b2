// Package bpf holds riposte's eBPF sensor: the C source (sensor.c, CO-RE,
// BTF-typed tracepoints only) and what bpf2go generates from it
// (sensor_x86_bpfel.go and sensor_x86_bpfel.o, committed so that building
// riposte needs no clang). `make generate` (go generate ./bpf/...)
// regenerates them; vmlinux.h is `bpftool btf dump file
// /sys/kernel/btf/vmlinux format c`.
//
// The generated LoadSensor / LoadSensorObjects return a CollectionSpec or
// loaded objects; SensorEvent is the Go layout of the ring-buffer record
// (exec records carry the argv buffer; symlink, link, rename and mount
// records the first PATH_LEN+FSTYPE_LEN bytes of it, holding their second
// path and file system type; every other record stops before it).
// The loader, attachment and decoding live in detector/sensor.
//
// enforce.c is a separate object (LoadEnforce, EnforceObjects): the
// in-kernel enforcement of rules marked `enforce:`, a second program on
// the exec tracepoint that signals a matching task before it returns to
// user space, with its own maps (names, paths, armed cgroups, mode and
// budget, decisions by pid). detector/enforce loads and drives it. Nothing here
// holds state; the caller closes what it loads.
package bpf
