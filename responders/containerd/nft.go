package containerd

import (
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// QuarantineTable is the nftables table containerd.quarantine installs in
// a container's network namespace (family inet). The name is riposte's:
// release deletes the table of this name that quarantine recorded.
const QuarantineTable = "riposte_quarantine"

// quarantineChains are the table's base chains, each with policy drop:
// a packet dropped by any base chain is dropped, whatever other tables
// accept.
var quarantineChains = []struct {
	name string
	hook *nftables.ChainHook
}{
	{"input", nftables.ChainHookInput},
	{"output", nftables.ChainHookOutput},
	{"forward", nftables.ChainHookForward},
}

// nftConn is a netlink connection to nf_tables in the network namespace
// open as ns. The caller closes ns after the last use of the connection;
// every call opens its own netlink socket there.
func nftConn(ns *os.File) (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return nil, fmt.Errorf("open nftables in the container's network namespace: %w", err)
	}
	return c, nil
}

// installedTable is what quarantine installed, read back from the kernel:
// the table's chains and the handles of their rules.
type installedTable struct {
	Chains []string            `json:"chains"`
	Rules  map[string][]uint64 `json:"rules"` // chain → rule handles
}

// readTable reads the quarantine table back; ok is false when the
// namespace has none.
func readTable(c *nftables.Conn) (installedTable, bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return installedTable{}, false, fmt.Errorf("list nftables tables: %w", err)
	}
	i := slices.IndexFunc(tables, func(t *nftables.Table) bool { return t.Name == QuarantineTable })
	if i < 0 {
		return installedTable{}, false, nil
	}
	t := tables[i]
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return installedTable{}, false, fmt.Errorf("list nftables chains: %w", err)
	}
	out := installedTable{Rules: map[string][]uint64{}}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != QuarantineTable {
			continue
		}
		out.Chains = append(out.Chains, ch.Name)
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return installedTable{}, false, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			out.Rules[ch.Name] = append(out.Rules[ch.Name], r.Handle)
		}
	}
	slices.Sort(out.Chains)
	return out, true, nil
}

// same reports whether the kernel's table is the one recorded: the same
// chains and rule handles (handles are never reused within a table).
func (a installedTable) same(b installedTable) bool {
	if !slices.Equal(a.Chains, b.Chains) {
		return false
	}
	for _, ch := range a.Chains {
		if !slices.Equal(a.Rules[ch], b.Rules[ch]) {
			return false
		}
	}
	return true
}

// installTable replaces any quarantine table with a fresh one, in one
// nf_tables transaction: the namespace is never half-isolated. Each chain
// drops by policy; input accepts what comes in on lo and from allow,
// output what goes out on lo and to allow; forward accepts nothing.
func installTable(c *nftables.Conn, replace bool, allow []netip.Prefix) error {
	t := &nftables.Table{Name: QuarantineTable, Family: nftables.TableFamilyINet}
	if replace {
		c.DelTable(t)
	}
	c.AddTable(t)
	drop := nftables.ChainPolicyDrop
	for _, spec := range quarantineChains {
		ch := c.AddChain(&nftables.Chain{Name: spec.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: spec.hook, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		var dir direction
		switch spec.name {
		case "input":
			dir = in
		case "output":
			dir = out
		default:
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: loopback(dir)})
		for _, p := range allow {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: peer(dir, p)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables table %s: %w", QuarantineTable, err)
	}
	return nil
}

// deleteTable removes the quarantine table.
func deleteTable(c *nftables.Conn) error {
	c.DelTable(&nftables.Table{Name: QuarantineTable, Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", QuarantineTable, err)
	}
	return nil
}

type direction int

const (
	in  direction = iota // input: match the interface it came in on, its source
	out                  // output: the interface it leaves by, its destination
)

// loopback is `meta iifname "lo" accept` (in) or `meta oifname "lo"
// accept` (out).
func loopback(d direction) []expr.Any {
	key := expr.MetaKeyIIFNAME
	if d == out {
		key = expr.MetaKeyOIFNAME
	}
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "lo")
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// peer is `ip saddr P accept` (in) or `ip daddr P accept` (out), or the
// ip6 form for an IPv6 prefix.
func peer(d direction, p netip.Prefix) []expr.Any {
	proto, offset, size := byte(unix.NFPROTO_IPV4), uint32(12), 4 // IPv4 header: saddr at 12, daddr at 16
	if p.Addr().Is6() {
		proto, offset, size = unix.NFPROTO_IPV6, 8, 16 // IPv6 header: saddr at 8, daddr at 24
	}
	if d == out {
		offset += uint32(size)
	}
	mask := make([]byte, size)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(size)},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(size), Mask: mask, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}
