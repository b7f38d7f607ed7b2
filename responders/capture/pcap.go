package capture

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

// isbRoom is what the interface statistics block written at the end of a
// pcapng file may take, per interface; it is kept out of the budget.
const isbRoom = 512

// maxISBComment bounds the comment of an interface statistics block.
const maxISBComment = 256

// pcapWriter writes the network capture: a pcapng section whose interface
// description blocks carry the container's metadata, one enhanced packet
// block per packet (with its direction), and at the end one interface
// statistics block per interface saying how the capture ended.
type pcapWriter struct {
	dst     io.Writer
	ng      *pcapgo.NgWriter
	ifaces  []*ifaceSock
	budget  *budget
	started time.Time

	written    []uint64 // packets written, per pcapng interface id
	notWritten uint64   // packets refused by the size cap
}

// pcapMeta is what the pcapng file says about the capture.
type pcapMeta struct {
	sectionComment string
	ifaceComment   string // appended to every interface's comment
	describe       string // appended to every interface's description
	snaplen        int
	osName         string
}

// newPcapWriter writes the section header and one interface description
// block per socket to dst, and counts them against b.
func newPcapWriter(dst io.Writer, socks []*ifaceSock, meta pcapMeta, b *budget, started time.Time) (*pcapWriter, error) {
	intf := func(s *ifaceSock) pcapgo.NgInterface {
		return pcapgo.NgInterface{
			Name:        s.name,
			Description: s.describe() + "; " + meta.describe,
			Comment:     meta.ifaceComment,
			OS:          meta.osName,
			LinkType:    s.linkType,
			SnapLength:  uint32(meta.snaplen),
		}
	}
	cw := &countWriter{w: dst}
	ng, err := pcapgo.NewNgWriterInterface(cw, intf(socks[0]), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: meta.osName, Application: "riposte", Comment: meta.sectionComment,
	}})
	if err != nil {
		return nil, fmt.Errorf("start pcapng: %w", err)
	}
	socks[0].pcapID = 0
	for _, s := range socks[1:] {
		id, err := ng.AddInterface(intf(s))
		if err != nil {
			return nil, fmt.Errorf("start pcapng: %w", err)
		}
		s.pcapID = id
	}
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("start pcapng: %w", err)
	}
	b.force(cw.n)
	return &pcapWriter{dst: dst, ng: ng, ifaces: socks, budget: b, started: started, written: make([]uint64, len(socks))}, nil
}

// epbSize is the size of the enhanced packet block of a packet of n bytes
// with a flags option: header 28, data padded to 4, flags option 8, end of
// options 4, trailing length 4.
func epbSize(n int) int64 { return int64(28 + (n+3)&^3 + 8 + 4 + 4) }

// write writes one packet; false when the size cap refused it.
func (w *pcapWriter) write(p packet) (bool, error) {
	if !w.budget.take(epbSize(len(p.data))) {
		w.notWritten++
		return false, nil
	}
	flags := pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
	if p.out {
		flags.Direction = pcapgo.NgEpbFlagDirectionOutbound
	}
	ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.length, InterfaceIndex: p.iface.pcapID}
	if err := w.ng.WritePacketWithOptions(ci, p.data, pcapgo.NgPacketOptions{Flags: &flags}); err != nil {
		return false, fmt.Errorf("write packet: %w", err)
	}
	w.written[p.iface.pcapID]++
	return true, nil
}

// packets is the number of packets written.
func (w *pcapWriter) packets() uint64 {
	var n uint64
	for _, c := range w.written {
		n += c
	}
	return n
}

// ifaceEnd is how the capture of one interface ended.
type ifaceEnd struct {
	received, dropped uint64 // kernel counters of the socket
	comment           string
}

// close flushes the packets and writes an interface statistics block per
// interface: start and end time, packets the socket received and the
// kernel dropped (isb_ifrecv, isb_osdrop), packets written (isb_usrdeliv),
// and a comment saying why the capture ended.
func (w *pcapWriter) close(end time.Time, ends []ifaceEnd) error {
	if err := w.ng.Flush(); err != nil {
		return fmt.Errorf("flush pcapng: %w", err)
	}
	for i, s := range w.ifaces {
		blk := isb(uint32(s.pcapID), end, w.started, end, ends[i].received, ends[i].dropped, w.written[s.pcapID], ends[i].comment)
		if _, err := w.dst.Write(blk); err != nil {
			return fmt.Errorf("write pcapng statistics: %w", err)
		}
	}
	return nil
}

// isb encodes an interface statistics block (pcapng §4.6), little endian
// as the rest of the section, timestamps in nanoseconds (the resolution
// every interface of the file declares).
func isb(ifaceID uint32, ts, start, end time.Time, recv, osdrop, delivered uint64, comment string) []byte {
	if len(comment) > maxISBComment {
		comment = comment[:maxISBComment]
	}
	le := binary.LittleEndian
	var opts []byte
	opt := func(code uint16, val []byte) {
		opts = le.AppendUint16(opts, code)
		opts = le.AppendUint16(opts, uint16(len(val)))
		opts = append(opts, val...)
		for len(opts)%4 != 0 {
			opts = append(opts, 0)
		}
	}
	tsOpt := func(t time.Time) []byte {
		ns := uint64(t.UnixNano())
		return le.AppendUint32(le.AppendUint32(nil, uint32(ns>>32)), uint32(ns))
	}
	u64 := func(v uint64) []byte { return le.AppendUint64(nil, v) }
	if comment != "" {
		opt(1, []byte(comment)) // opt_comment
	}
	opt(2, tsOpt(start))            // isb_starttime
	opt(3, tsOpt(end))              // isb_endtime
	opt(4, u64(recv))               // isb_ifrecv
	opt(7, u64(osdrop))             // isb_osdrop
	opt(8, u64(delivered))          // isb_usrdeliv
	opts = append(opts, 0, 0, 0, 0) // opt_endofopt

	total := uint32(4 + 4 + 4 + 8 + len(opts) + 4)
	ns := uint64(ts.UnixNano())
	var b []byte
	b = le.AppendUint32(b, 0x00000005)
	b = le.AppendUint32(b, total)
	b = le.AppendUint32(b, ifaceID)
	b = le.AppendUint32(b, uint32(ns>>32))
	b = le.AppendUint32(b, uint32(ns))
	b = append(b, opts...)
	b = le.AppendUint32(b, total)
	return b
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
