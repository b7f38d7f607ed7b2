package bpf

//go:generate go tool bpf2go -target amd64 -type event -cflags "-O2 -g -Wall -Werror" Sensor sensor.c -- -I.
