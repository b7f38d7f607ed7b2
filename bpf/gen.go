package bpf

//go:generate go tool bpf2go -target amd64 -type event -cflags "-O2 -g -Wall -Werror" Sensor sensor.c -- -I.
//go:generate go tool bpf2go -target amd64 -type enforce_record -type enforce_config -type enforce_verdict -cflags "-O2 -g -Wall -Werror" Enforce enforce.c -- -I.
