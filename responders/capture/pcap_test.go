package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestPcapWriter writes a pcapng the way a capture does and reads it back:
// interfaces with the container's metadata, packets with their direction,
// the size accounting exact, the statistics blocks with their comment.
func TestPcapWriter(t *testing.T) {
	eth := &ifaceSock{fd: -1, name: "eth0", mac: "02:42:ac:11:00:02", addrs: []string{"172.17.0.2/16"}, hatype: arphrdEther, linkType: layers.LinkTypeEthernet}
	lo := &ifaceSock{fd: -1, name: "lo", addrs: []string{"127.0.0.1/8"}, hatype: arphrdLoopback, linkType: layers.LinkTypeEthernet}
	meta := pcapMeta{sectionComment: "riposte capture c1 of container web", describe: "container web (0123456789ab), image nginx:1",
		ifaceComment: "riposte capture_id=c1 container_id=0123456789ab", snaplen: 65536, osName: "Linux"}
	start := time.Date(2026, 5, 7, 21, 9, 36, 0, time.UTC)
	var buf bytes.Buffer
	b := &budget{limit: 1 << 20}
	w, err := newPcapWriter(&buf, []*ifaceSock{eth, lo}, meta, b, start)
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{60, 61, 62, 63, 1514, 0}
	for i, n := range sizes {
		p := packet{iface: eth, ts: start.Add(time.Duration(i) * time.Millisecond), data: bytes.Repeat([]byte{byte(i)}, n), length: n + 10, out: i%2 == 0}
		if i == 3 {
			p.iface = lo
		}
		ok, err := w.write(p)
		if !ok || err != nil {
			t.Fatalf("write packet %d: %v %v", i, ok, err)
		}
	}
	if err := w.ng.Flush(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != b.used {
		t.Fatalf("file has %d bytes, budget counted %d", buf.Len(), b.used)
	}
	before := buf.Len()
	if err := w.close(start.Add(time.Second), []ifaceEnd{{received: 5, dropped: 1, comment: "riposte: capture ended, reason=duration"}, {received: 1, comment: strings.Repeat("x", 1000)}}); err != nil {
		t.Fatal(err)
	}
	if isbs := buf.Len() - before; isbs > 2*isbRoom {
		t.Errorf("statistics blocks take %d bytes, room kept %d", isbs, 2*isbRoom)
	}

	type stat struct {
		iface int
		s     pcapgo.NgInterfaceStatistics
	}
	var stats []stat
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.NgReaderOptions{StatisticsCallback: func(i int, s pcapgo.NgInterfaceStatistics) {
		stats = append(stats, stat{i, s})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if si := r.SectionInfo(); si.Application != "riposte" || si.Comment != meta.sectionComment {
		t.Errorf("section = %+v", si)
	}
	var got []int
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		i := len(got)
		got = append(got, len(data))
		wantIface := 0
		if i == 3 {
			wantIface = 1
		}
		if ci.InterfaceIndex != wantIface || ci.Length != sizes[i]+10 || !ci.Timestamp.Equal(start.Add(time.Duration(i)*time.Millisecond)) {
			t.Errorf("packet %d: %+v", i, ci)
		}
		wantDir := pcapgo.NgEpbFlagDirectionInbound
		if i%2 == 0 {
			wantDir = pcapgo.NgEpbFlagDirectionOutbound
		}
		if opts.Flags == nil || opts.Flags.Direction != wantDir {
			t.Errorf("packet %d: flags %+v", i, opts.Flags)
		}
	}
	if len(got) != len(sizes) {
		t.Fatalf("read %d packets, wrote %d", len(got), len(sizes))
	}
	if n := r.NInterfaces(); n != 2 {
		t.Fatalf("%d interfaces", n)
	}
	ifc, _ := r.Interface(0)
	if ifc.Name != "eth0" || !strings.Contains(ifc.Description, "172.17.0.2/16") || !strings.Contains(ifc.Description, "container web") ||
		ifc.Comment != meta.ifaceComment || ifc.SnapLength != 65536 || ifc.LinkType != layers.LinkTypeEthernet {
		t.Errorf("interface 0 = %+v", ifc)
	}
	if len(stats) != 2 || stats[0].iface != 0 || stats[0].s.Comment != "riposte: capture ended, reason=duration" ||
		stats[0].s.PacketsReceived != 5 || !stats[0].s.StartTime.Equal(start) || !stats[0].s.EndTime.Equal(start.Add(time.Second)) {
		t.Errorf("statistics = %+v", stats)
	}
	if len(stats) == 2 && len(stats[1].s.Comment) != maxISBComment {
		t.Errorf("long comment kept %d bytes", len(stats[1].s.Comment))
	}

	// A third party reads it too.
	if _, err := exec.LookPath("tshark"); err == nil {
		name := filepath.Join(t.TempDir(), "t.pcapng")
		if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("tshark", "-r", name, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.len")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != len(sizes) || !strings.HasPrefix(lines[0], "eth0\t70") {
			t.Errorf("tshark read:\n%s", out)
		}
	}
}

// TestPcapCap: a packet that does not fit the budget is refused and counted.
func TestPcapCap(t *testing.T) {
	eth := &ifaceSock{fd: -1, name: "eth0", linkType: layers.LinkTypeEthernet}
	var buf bytes.Buffer
	b := &budget{limit: 4096}
	w, err := newPcapWriter(&buf, []*ifaceSock{eth}, pcapMeta{snaplen: 1500}, b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var written int
	for i := 0; i < 10; i++ {
		ok, err := w.write(packet{iface: eth, ts: time.Now(), data: make([]byte, 1000), length: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			written++
		}
	}
	if written == 0 || written >= 4 || w.notWritten != uint64(10-written) {
		t.Errorf("written %d, not written %d", written, w.notWritten)
	}
	w.ng.Flush()
	if int64(buf.Len()) > b.limit || int64(buf.Len()) != b.used {
		t.Errorf("file %d bytes, budget %d used of %d", buf.Len(), b.used, b.limit)
	}
}

func TestLinkTypeOf(t *testing.T) {
	for _, tt := range []struct {
		hatype uint16
		want   layers.LinkType
		ok     bool
	}{{arphrdEther, layers.LinkTypeEthernet, true}, {arphrdLoopback, layers.LinkTypeEthernet, true}, {arphrdNone, layers.LinkTypeRaw, true}, {778, 0, false}} {
		got, ok := linkTypeOf(tt.hatype)
		if got != tt.want || ok != tt.ok {
			t.Errorf("linkTypeOf(%d) = %v %v", tt.hatype, got, ok)
		}
	}
}
