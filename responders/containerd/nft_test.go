package containerd

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// TestPeerRule: the allow rule loads the source (in) or destination (out)
// address from the right offset of the IPv4 or IPv6 header and compares
// it, masked, with the prefix's network.
func TestPeerRule(t *testing.T) {
	tests := []struct {
		prefix       string
		dir          direction
		proto        byte
		offset, size uint32
		mask, net    []byte
	}{
		{"10.1.2.3/8", in, 2, 12, 4, []byte{0xff, 0, 0, 0}, []byte{10, 0, 0, 0}},
		{"192.0.2.1/32", out, 2, 16, 4, []byte{0xff, 0xff, 0xff, 0xff}, []byte{192, 0, 2, 1}},
		{"172.16.0.0/12", out, 2, 16, 4, []byte{0xff, 0xf0, 0, 0}, []byte{172, 16, 0, 0}},
		{"2001:db8::/33", in, 10, 8, 16, append([]byte{0xff, 0xff, 0xff, 0xff, 0x80}, make([]byte, 11)...), netip.MustParseAddr("2001:db8::").AsSlice()},
		{"2001:db8::1/128", out, 10, 24, 16, bytes.Repeat([]byte{0xff}, 16), netip.MustParseAddr("2001:db8::1").AsSlice()},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			e := peer(tt.dir, netip.MustParsePrefix(tt.prefix))
			if len(e) != 6 {
				t.Fatalf("%d expressions", len(e))
			}
			if c := e[1].(*expr.Cmp); !bytes.Equal(c.Data, []byte{tt.proto}) {
				t.Errorf("nfproto %v, want %d", c.Data, tt.proto)
			}
			if p := e[2].(*expr.Payload); p.Offset != tt.offset || p.Len != tt.size || p.Base != expr.PayloadBaseNetworkHeader {
				t.Errorf("payload %+v, want offset %d len %d", p, tt.offset, tt.size)
			}
			if b := e[3].(*expr.Bitwise); !bytes.Equal(b.Mask, tt.mask) || len(b.Xor) != int(tt.size) {
				t.Errorf("mask %x, want %x", b.Mask, tt.mask)
			}
			if c := e[4].(*expr.Cmp); !bytes.Equal(c.Data, tt.net) {
				t.Errorf("network %v, want %v", c.Data, tt.net)
			}
			if v := e[5].(*expr.Verdict); v.Kind != expr.VerdictAccept {
				t.Errorf("verdict %v", v.Kind)
			}
		})
	}
}

func TestParseAllowAddress(t *testing.T) {
	got, err := parseAllow([]string{"192.0.2.7", "10.9.8.7/8"})
	if err != nil || len(got) != 2 || got[0].String() != "192.0.2.7/32" || got[1].String() != "10.0.0.0/8" {
		t.Fatalf("parseAllow = %v, %v", got, err)
	}
}

// FuzzParseAllow: any allow-list entry parses into a masked prefix or is
// refused with a message naming it; never a panic.
func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:10.0.0.1", "fe80::1%eth0/64", "", "10.0.0.0/33", "dns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAllow([]string{s})
		if err != nil {
			if len(got) != 0 || !strings.Contains(err.Error(), "quarantine.allow[0]") {
				t.Fatalf("parseAllow(%q) = %v, %v", s, got, err)
			}
			return
		}
		if len(got) != 1 || got[0] != got[0].Masked() || got[0].Addr().Zone() != "" || got[0].Addr().Is4In6() {
			t.Fatalf("parseAllow(%q) = %v", s, got)
		}
		peer(in, got[0])
		peer(out, got[0])
	})
}
