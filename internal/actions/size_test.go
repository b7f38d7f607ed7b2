package actions

import "testing"

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		text string
	}{{"1GiB", 1 << 30, "1GiB"}, {"64KiB", 64 << 10, "64KiB"}, {"3MiB", 3 << 20, "3MiB"}, {"1000", 1000, "1000 bytes"}, {"50MB", 50_000_000, "50000000 bytes"}} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(tc.in)); err != nil || int64(b) != tc.want || b.String() != tc.text {
			t.Errorf("%s: %d %q %v", tc.in, int64(b), b.String(), err)
		}
	}
	var b ByteSize
	if err := b.UnmarshalText([]byte("lots")); err == nil {
		t.Error("accepted lots")
	}
}

func TestPathSegment(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"inc-20261124-101010-abc", "inc-20261124-101010-abc"},
		{"../../etc", "_.._etc"},
		{"", "manual"},
		{"...", "manual"},
		{"a b/c", "a_b_c"},
		{"é", "_"},
	} {
		if got := PathSegment(tc.in, "manual"); got != tc.want {
			t.Errorf("PathSegment(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	if got := PathSegment(string(long), "d"); len(got) != 128 {
		t.Errorf("length %d", len(got))
	}
}
