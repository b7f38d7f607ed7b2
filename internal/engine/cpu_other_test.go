//go:build !unix

package engine

func processCPU() (int64, bool) { return 0, false }
