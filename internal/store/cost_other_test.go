//go:build !linux

package store

import "errors"

type cost struct {
	cpu     int64
	mallocs uint64
	written int64
}

func readCost() (cost, error) { return cost{}, errors.New("cost counters need Linux") }
