package pixel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/espnode/espnode/dcm"
)

// FrameStart returns, for an encapsulated transfer syntax, a test of whether a fragment begins
// a frame's codestream: what splits fragments into frames when no offset table says where
// frames start. It is nil for RLE, where every frame is exactly one fragment (PS3.5 A.4.2).
func FrameStart(ts string) func([]byte) bool {
	switch families[ts] {
	case famJPEG, famJPEGLS:
		return func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xD8}) } // SOI
	case famJ2K:
		return func(b []byte) bool {
			// SOC and SIZ, or a JP2 file's signature box.
			return bytes.HasPrefix(b, []byte{0xFF, 0x4F, 0xFF, 0x51}) || bytes.HasPrefix(b, []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' '})
		}
	case famJXL:
		return func(b []byte) bool {
			// A bare codestream, or the container's signature box.
			return bytes.HasPrefix(b, []byte{0xFF, 0x0A}) || bytes.HasPrefix(b, []byte{0, 0, 0, 0x0C, 'J', 'X', 'L', ' '})
		}
	}
	return nil
}

// SplitFrames groups fragments into frames. With a Basic Offset Table (offsets, one per frame)
// the table decides, each offset being the distance from the first fragment's item tag to the
// first item tag of the frame. Without one: a single frame takes every fragment, as many
// fragments as frames give one each, and otherwise, where starts is given, a frame starts at
// each fragment that begins a codestream (FrameStart); with starts nil it is an error.
func SplitFrames(fragments [][]byte, offsets []uint32, frames int, starts func([]byte) bool) ([][]byte, error) {
	if frames < 1 {
		return nil, fmt.Errorf("split frames: %d frames", frames)
	}
	if len(fragments) == 0 {
		return nil, errors.New("split frames: encapsulated pixel data has no fragment")
	}
	if len(offsets) > 0 && !(len(offsets) == 1 && offsets[0] == 0 && frames > 1) {
		wide := make([]uint64, len(offsets))
		for i, o := range offsets {
			wide[i] = uint64(o)
		}
		return splitByOffsets(fragments, wide, frames, "basic offset table")
	}
	switch {
	case frames == 1:
		return [][]byte{bytes.Join(fragments, nil)}, nil
	case len(fragments) == frames:
		return fragments, nil
	case starts == nil:
		return nil, fmt.Errorf("split frames: %d fragments for %d frames, and this syntax needs one fragment per frame", len(fragments), frames)
	}
	var out [][]byte
	for i, f := range fragments {
		if starts(f) || i == 0 {
			if len(out) == frames {
				return nil, fmt.Errorf("split frames: more than %d codestream starts in %d fragments", frames, len(fragments))
			}
			out = append(out, append([]byte(nil), f...))
			continue
		}
		out[len(out)-1] = append(out[len(out)-1], f...)
	}
	if len(out) != frames {
		return nil, fmt.Errorf("split frames: found %d codestream starts in %d fragments, want %d frames", len(out), len(fragments), frames)
	}
	return out, nil
}

func splitByOffsets(fragments [][]byte, offsets []uint64, frames int, table string) ([][]byte, error) {
	if len(offsets) != frames {
		return nil, fmt.Errorf("split frames: %s has %d entries for %d frames", table, len(offsets), frames)
	}
	out := make([][]byte, frames)
	pos := uint64(0)
	k := -1
	for _, f := range fragments {
		// Move to the frame whose offset is this fragment's position; an offset that falls
		// inside a fragment matches no position and is caught below.
		for k+1 < frames && offsets[k+1] == pos {
			k++
			if out[k] != nil {
				return nil, fmt.Errorf("split frames: %s entry %d repeats an offset", table, k)
			}
			out[k] = []byte{}
		}
		if k < 0 {
			return nil, fmt.Errorf("split frames: first offset %d is not 0", offsets[0])
		}
		if k+1 < frames && offsets[k+1] < pos {
			return nil, fmt.Errorf("split frames: offset %d of frame %d does not start a fragment", offsets[k+1], k+1)
		}
		if len(out[k]) == 0 {
			// A frame of one fragment (the usual case) shares its bytes.
			out[k] = f
		} else {
			out[k] = append(bytes.Clone(out[k]), f...)
		}
		pos += 8 + uint64(len(f))
	}
	if k != frames-1 {
		return nil, fmt.Errorf("split frames: %s points past the %d fragments (frame %d of %d found)", table, len(fragments), k+1, frames)
	}
	return out, nil
}

// splitPixelData splits an encapsulated Pixel Data element into frames by its Extended Offset
// Table (PS3.3 C.7.6.3.1.8) when the data set has one, else by its Basic Offset Table or the
// codestream starts.
func splitPixelData(ds *dcm.DataSet, pixelData *dcm.Element, fragments [][]byte, in *Info) ([][]byte, error) {
	eot, eotLengths := ds.Find(dcm.ExtendedOffsetTable), ds.Find(dcm.ExtendedOffsetTableLengths)
	if eot == nil {
		offsets, err := pixelData.OffsetTable()
		if err != nil {
			return nil, err
		}
		return SplitFrames(fragments, offsets, in.NumberOfFrames, FrameStart(in.TransferSyntax))
	}
	var lengthBytes []byte
	if eotLengths != nil {
		lengthBytes = eotLengths.Value
	}
	offsets, lengths := uint64s(eot.Value), uint64s(lengthBytes)
	if len(eot.Value)%8 != 0 || len(lengthBytes)%8 != 0 || (eotLengths != nil && len(lengths) != len(offsets)) {
		return nil, fmt.Errorf("split frames: extended offset table of %d bytes, lengths of %d", len(eot.Value), len(lengthBytes))
	}
	frames, err := splitByOffsets(fragments, offsets, in.NumberOfFrames, "extended offset table")
	if err != nil {
		return nil, err
	}
	for i, n := range lengths {
		// The lengths exclude the padding of the frame's last fragment.
		if n > uint64(len(frames[i])) {
			return nil, fmt.Errorf("split frames: extended offset table gives frame %d %d bytes, its fragments hold %d", i, n, len(frames[i]))
		}
		frames[i] = frames[i][:n]
	}
	return frames, nil
}

func uint64s(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}
