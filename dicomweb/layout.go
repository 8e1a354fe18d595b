package dicomweb

import (
	"bufio"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/store"
)

// pixelLayout is where an instance's frames are in its data set, found by one pass of dcm's
// reader over the headers: frames are then read with one seek each, not a parse of the file.
type pixelLayout struct {
	ts                                 string
	rows, cols, spp                    int
	bitsAllocated, bitsStored, highBit int
	pixelRep, planar, frames           int
	photometric                        string
	hasPixels, encapsulated            bool
	// deflated: offsets are of the inflated stream, which cannot be sought in.
	deflated bool
	// A native value: its VR (OB or OW), byte order, and place in the data set.
	vr                       string
	bigEndian                bool
	valueOffset, valueLength int64
	// frameParts are, for encapsulated pixel data, the fragments of each frame.
	frameParts [][]span
}

// span is a range of the data set: a fragment's value.
type span struct{ off, n int64 }

// frameBytes is the size of one native frame in bytes (rounded up for 1-bit data, whose frames
// are packed without padding between them).
func (l *pixelLayout) frameBytes() int64 {
	bits := int64(l.rows) * int64(l.cols) * int64(l.spp) * int64(l.bitsAllocated)
	if l.photometric == "YBR_FULL_422" && l.spp == 3 && !l.encapsulated {
		// Native YBR_FULL_422 keeps one Cb and one Cr for every two pixels (PS3.3 C.7.6.3.1.2).
		bits = bits * 2 / 3
	}
	return (bits + 7) / 8
}

// layoutKey names an instance's stored object: a replaced instance gets a new layout.
type layoutKey struct {
	uid      string
	size     int64
	received int64
}

// layoutCache keeps the layouts of recently read instances, the least recently used dropped
// first.
type layoutCache struct {
	mu  sync.Mutex
	max int
	m   map[layoutKey]*list.Element
	lru *list.List
}

type layoutEntry struct {
	key layoutKey
	l   *pixelLayout
}

func newLayoutCache(max int) *layoutCache {
	return &layoutCache{max: max, m: map[layoutKey]*list.Element{}, lru: list.New()}
}

func (c *layoutCache) get(k layoutKey) *pixelLayout {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*layoutEntry).l
	}
	return nil
}

func (c *layoutCache) put(k layoutKey, l *pixelLayout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.Value.(*layoutEntry).l = l
		c.lru.MoveToFront(e)
		return
	}
	c.m[k] = c.lru.PushFront(&layoutEntry{key: k, l: l})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*layoutEntry).key)
	}
}

func keyOf(in store.Instance) layoutKey {
	return layoutKey{uid: in.SOPInstanceUID, size: in.Size, received: in.ReceivedAt.UnixNano()}
}

// layout returns the instance's pixel layout, from the cache or read.
func (s *Server) layout(ctx context.Context, in store.Instance) (*pixelLayout, error) {
	k := keyOf(in)
	if l := s.layouts.get(k); l != nil {
		return l, nil
	}
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	l, err := readLayout(bufio.NewReaderSize(rc, 64<<10), in.TransferSyntaxUID)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", in.SOPInstanceUID, err)
	}
	s.layouts.put(k, l)
	return l, nil
}

// readLayout reads a data set's headers up to its pixel data.
func readLayout(r io.Reader, ts string) (*pixelLayout, error) {
	rd, err := dcm.NewReader(r, ts, dcm.Limits{})
	if err != nil {
		return nil, err
	}
	l := &pixelLayout{ts: ts, spp: 1, frames: 1, highBit: -1}
	if syn, ok := dcm.LookupTransferSyntax(ts); ok {
		l.deflated = syn.Deflated
	}
	ints := map[dcm.Tag]*int{dcm.Rows: &l.rows, dcm.Columns: &l.cols, dcm.SamplesPerPixel: &l.spp,
		dcm.BitsAllocated: &l.bitsAllocated, dcm.BitsStored: &l.bitsStored, dcm.HighBit: &l.highBit,
		dcm.PixelRepresentation: &l.pixelRep, dcm.PlanarConfiguration: &l.planar, dcm.NumberOfFrames: &l.frames}
	for {
		h, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Depth > 0 {
			continue
		}
		switch h.Kind {
		case dcm.KindElement:
			if h.Tag == dcm.PixelData {
				l.hasPixels = true
				l.vr, l.bigEndian = h.VR, h.BigEndian
				l.valueOffset, l.valueLength = h.Offset, int64(h.Length)
				return l, l.check()
			}
			if p, ok := ints[h.Tag]; ok || h.Tag == dcm.PhotometricInterpretation {
				v, err := rd.Value()
				if err != nil {
					return nil, err
				}
				e := dcm.Element{Tag: h.Tag, VR: h.VR, Value: v, BigEndian: h.BigEndian}
				if ok {
					n, err := e.Int()
					if err != nil && !errors.Is(err, dcm.ErrNoValue) {
						return nil, err
					}
					if err == nil {
						*p = int(n)
					}
				} else {
					l.photometric = e.Text()
				}
			}
		case dcm.KindFragments:
			if h.Tag != dcm.PixelData {
				continue
			}
			l.hasPixels, l.encapsulated = true, true
			if err := l.readFragments(rd); err != nil {
				return nil, err
			}
			return l, l.check()
		}
	}
	return l, l.check()
}

// check bounds what the header says before anything is allocated from it.
func (l *pixelLayout) check() error {
	if !l.hasPixels {
		return nil
	}
	if l.bitsStored == 0 {
		l.bitsStored = l.bitsAllocated
	}
	if l.highBit < 0 {
		l.highBit = l.bitsStored - 1
	}
	switch {
	case l.rows <= 0 || l.cols <= 0 || l.rows > 1<<16 || l.cols > 1<<16:
		return fmt.Errorf("image of %dx%d pixels", l.rows, l.cols)
	case l.spp != 1 && l.spp != 3:
		return fmt.Errorf("%d samples per pixel", l.spp)
	case l.bitsAllocated != 1 && l.bitsAllocated != 8 && l.bitsAllocated != 16 && l.bitsAllocated != 32 && l.bitsAllocated != 64:
		return fmt.Errorf("%d bits allocated", l.bitsAllocated)
	case l.frames < 1 || l.frames > 1<<20:
		return fmt.Errorf("%d frames", l.frames)
	case int64(l.rows)*int64(l.cols) > 1<<28:
		return fmt.Errorf("frame of %dx%d pixels is too large", l.rows, l.cols)
	}
	need := l.frameBytes() * int64(l.frames)
	if l.bitsAllocated == 1 {
		// 1-bit frames are packed without padding between them.
		need = (int64(l.rows)*int64(l.cols)*int64(l.spp)*int64(l.frames) + 7) / 8
	}
	if !l.encapsulated && l.valueLength != dcm.UndefinedLength && need > l.valueLength+1 {
		return fmt.Errorf("pixel data of %d bytes is short of %d frames (%d bytes)", l.valueLength, l.frames, need)
	}
	return nil
}

// readFragments records each fragment's place and groups them into frames, by the rules
// pixel.SplitFrames applies to their bytes (a test checks the two agree): the Basic Offset Table
// when it has one entry per frame; else one frame of every fragment, one fragment per frame,
// or, where the syntax has one, a frame at each fragment beginning a codestream (pixel.FrameStart).
func (l *pixelLayout) readFragments(rd *dcm.Reader) error {
	var (
		bot    []uint32
		frags  []span
		starts []bool // fragment begins a codestream
		begins = pixel.FrameStart(l.ts)
		first  = true
	)
	for {
		h, err := rd.Next()
		if err != nil {
			return err
		}
		if h.Kind == dcm.KindSequenceEnd {
			break
		}
		if h.Kind != dcm.KindFragment {
			return fmt.Errorf("%v inside encapsulated pixel data", h.Kind)
		}
		if first {
			first = false
			v, err := rd.Value()
			if err != nil {
				return err
			}
			if len(v)%4 != 0 {
				return fmt.Errorf("basic offset table of %d bytes", len(v))
			}
			for i := 0; i+4 <= len(v); i += 4 {
				bot = append(bot, binary.LittleEndian.Uint32(v[i:]))
			}
			continue
		}
		var head [8]byte
		n, _ := io.ReadFull(rd.ValueReader(), head[:])
		frags = append(frags, span{off: h.Offset, n: int64(h.Length)})
		starts = append(starts, begins != nil && begins(head[:n]))
	}
	if len(frags) == 0 {
		return errors.New("encapsulated pixel data has no fragment")
	}
	frames := l.frames
	switch {
	case len(bot) > 0 && !(len(bot) == 1 && bot[0] == 0 && frames > 1):
		if len(bot) != frames {
			return fmt.Errorf("basic offset table has %d entries for %d frames", len(bot), frames)
		}
		// Offsets count from the first fragment's item tag, 8 bytes before its value.
		base := frags[0].off - 8
		l.frameParts = make([][]span, frames)
		k := -1
		for _, f := range frags {
			pos := f.off - 8 - base
			for k+1 < frames && int64(bot[k+1]) <= pos {
				k++
			}
			if k < 0 {
				return errors.New("basic offset table does not start at the first fragment")
			}
			l.frameParts[k] = append(l.frameParts[k], f)
		}
		for i, p := range l.frameParts {
			if len(p) == 0 {
				return fmt.Errorf("frame %d has no fragment", i+1)
			}
		}
	case frames == 1:
		l.frameParts = [][]span{frags}
	case len(frags) == frames:
		for _, f := range frags {
			l.frameParts = append(l.frameParts, []span{f})
		}
	case l.ts == dcm.RLELossless:
		return fmt.Errorf("%d fragments for %d frames, and RLE needs one fragment per frame", len(frags), frames)
	case begins == nil:
		return fmt.Errorf("%d fragments for %d frames, and no offset table says where frames start", len(frags), frames)
	default:
		for i, f := range frags {
			if starts[i] || i == 0 {
				if len(l.frameParts) == frames {
					return fmt.Errorf("more than %d codestream starts in %d fragments", frames, len(frags))
				}
				l.frameParts = append(l.frameParts, []span{f})
				continue
			}
			last := len(l.frameParts) - 1
			l.frameParts[last] = append(l.frameParts[last], f)
		}
		if len(l.frameParts) != frames {
			return fmt.Errorf("found %d codestream starts in %d fragments, want %d frames", len(l.frameParts), len(frags), frames)
		}
	}
	return nil
}

// maxFrameBytes bounds one frame read into memory.
const maxFrameBytes = 1 << 30

// readFrame returns frame i (0-based) as stored: native bytes in little endian (a 1-bit frame
// starting at its first bit), or the frame's fragments joined.
func (s *Server) readFrame(ctx context.Context, in store.Instance, l *pixelLayout, i int) ([]byte, error) {
	if i < 0 || i >= l.frames {
		return nil, statusErr(404, "frame %d of %d", i+1, l.frames)
	}
	if l.deflated {
		return s.readFrameInflated(ctx, in, l, i)
	}
	if l.encapsulated {
		parts := l.frameParts[i]
		total := int64(0)
		for _, p := range parts {
			total += p.n
		}
		if total > maxFrameBytes {
			return nil, fmt.Errorf("frame of %d bytes", total)
		}
		rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, parts[0].off)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		out := make([]byte, 0, total)
		pos := parts[0].off
		for _, p := range parts {
			if _, err := io.CopyN(io.Discard, rc, p.off-pos); err != nil {
				return nil, fmt.Errorf("frame %d: %w", i+1, err)
			}
			b := out[len(out) : len(out)+int(p.n)]
			if _, err := io.ReadFull(rc, b); err != nil {
				return nil, fmt.Errorf("frame %d: %w", i+1, err)
			}
			out = out[:len(out)+int(p.n)]
			pos = p.off + p.n
		}
		return out, nil
	}
	size := l.frameBytes()
	if size > maxFrameBytes {
		return nil, fmt.Errorf("frame of %d bytes", size)
	}
	start, end := int64(i)*size, int64(i+1)*size
	if l.bitsAllocated == 1 {
		bits := int64(l.rows) * int64(l.cols) * int64(l.spp)
		start, end = int64(i)*bits, int64(i+1)*bits
		lo, hi := start/8, (end+7)/8
		raw, err := s.readRange(ctx, in, l.valueOffset+lo, hi-lo)
		if err != nil {
			return nil, err
		}
		return realignBits(raw, int(start%8), int(bits)), nil
	}
	swapped := l.bigEndian && l.vr == "OW"
	lo, hi := start, end
	if swapped {
		lo, hi = lo&^1, (hi+1)&^1
	}
	raw, err := s.readRange(ctx, in, l.valueOffset+lo, hi-lo)
	if err != nil {
		return nil, err
	}
	if swapped {
		raw = swap(raw, 2)
		return raw[start-lo : start-lo+size], nil
	}
	if l.bigEndian && l.bitsAllocated > 8 {
		raw = swap(raw, l.bitsAllocated/8)
	}
	return raw, nil
}

func (s *Server) readRange(ctx context.Context, in store.Instance, off, n int64) ([]byte, error) {
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, off)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read pixel data of %s: %w", in.SOPInstanceUID, err)
	}
	return b, nil
}

// realignBits returns bits [start, start+n) of b (least significant bit first) starting at bit 0.
func realignBits(b []byte, start, n int) []byte {
	out := make([]byte, (n+7)/8)
	if start == 0 {
		copy(out, b)
	} else {
		for k := range n {
			pos := start + k
			if b[pos/8]>>(pos%8)&1 != 0 {
				out[k/8] |= 1 << (k % 8)
			}
		}
	}
	if n%8 != 0 {
		out[len(out)-1] &= byte(1<<(n%8)) - 1
	}
	return out
}

// readFrameInflated reads a frame of a deflated data set, whose offsets cannot be sought to:
// the data set is read to its pixel data.
func (s *Server) readFrameInflated(ctx context.Context, in store.Instance, l *pixelLayout, i int) ([]byte, error) {
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ds, err := dcm.ReadDataSet(bufio.NewReaderSize(rc, 64<<10), in.TransferSyntaxUID, dcm.ParseOptions{Keep: dcm.NewTagSet(dcm.PixelData)})
	if err != nil {
		return nil, err
	}
	e := ds.Find(dcm.PixelData)
	if e == nil || e.Fragments != nil {
		return nil, errors.New("deflated data set without native pixel data")
	}
	if l.bitsAllocated == 1 {
		bits := l.rows * l.cols * l.spp
		start := i * bits
		if (start+bits+7)/8 > len(e.Value) {
			return nil, fmt.Errorf("pixel data short of frame %d", i+1)
		}
		return realignBits(e.Value[start/8:], start%8, bits), nil
	}
	size := int(l.frameBytes())
	if (i+1)*size > len(e.Value) {
		return nil, fmt.Errorf("pixel data short of frame %d", i+1)
	}
	return e.Value[i*size : (i+1)*size], nil
}
