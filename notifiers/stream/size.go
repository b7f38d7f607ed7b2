package stream

import (
	"fmt"
	"strconv"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Size is a number of bytes in a config file: 1048576, 512KiB, 50MB, 1GiB.
type Size int64

// UnmarshalText accepts a plain number of bytes or a number with a unit
// (KB, MB, GB, KiB, MiB, GiB).
func (s *Size) UnmarshalText(b []byte) error {
	n, err := actions.AsBytes(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// MarshalText writes the number of bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// String writes the size with the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.n, u.name)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}
