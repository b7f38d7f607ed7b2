package actions

import "strconv"

// ByteSize is a size in bytes that YAML and parameters may give as
// 1048576, 512KiB, 50MB or 1GiB (see AsBytes).
type ByteSize int64

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := AsBytes(string(text))
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// MarshalText writes the size in bytes.
func (b ByteSize) MarshalText() ([]byte, error) {
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

// String writes the size the way people read it: 1GiB, 64KiB, 1000 bytes.
func (b ByteSize) String() string {
	n := int64(b)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// PathSegment makes s usable as one element of an evidence path: letters,
// digits, '.', '_' and '-' are kept, anything else becomes '_', at most
// 128 characters, no leading dots; "" becomes def. The responders name
// incident directories with it, so that the snapshots and captures of an
// incident share its directory.
func PathSegment(s, def string) string {
	b := make([]byte, 0, min(len(s), 128))
	for _, c := range s {
		if len(b) >= 128 {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
			b = append(b, byte(c))
		default:
			b = append(b, '_')
		}
	}
	for len(b) > 0 && b[0] == '.' {
		b = b[1:]
	}
	if len(b) == 0 {
		return def
	}
	return string(b)
}
