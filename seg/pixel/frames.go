package pixel

import (
	"bytes"
	"errors"
	"fmt"
)

var jpegSOI = []byte{0xFF, 0xD8}

// SplitFrames groups fragments into frames. With a Basic Offset Table (offsets, one per frame)
// the table decides, each offset being the distance from the first fragment's item tag to the
// first item tag of the frame. Without one: a single frame takes every fragment, as many
// fragments as frames give one each, and otherwise, for JPEG-family syntaxes (splitAtSOI), a
// frame starts at each fragment that begins with an SOI marker. RLE, where every frame is
// exactly one fragment (PS3.5 A.4.2), passes splitAtSOI false and gets an error instead.
func SplitFrames(fragments [][]byte, offsets []uint32, frames int, splitAtSOI bool) ([][]byte, error) {
	if frames < 1 {
		return nil, fmt.Errorf("split frames: %d frames", frames)
	}
	if len(fragments) == 0 {
		return nil, errors.New("split frames: encapsulated pixel data has no fragment")
	}
	if len(offsets) > 0 && !(len(offsets) == 1 && offsets[0] == 0 && frames > 1) {
		return splitByOffsets(fragments, offsets, frames)
	}
	switch {
	case frames == 1:
		return [][]byte{bytes.Join(fragments, nil)}, nil
	case len(fragments) == frames:
		return fragments, nil
	case !splitAtSOI:
		return nil, fmt.Errorf("split frames: %d fragments for %d frames, and this syntax needs one fragment per frame", len(fragments), frames)
	}
	var out [][]byte
	for i, f := range fragments {
		if bytes.HasPrefix(f, jpegSOI) || i == 0 {
			if len(out) == frames {
				return nil, fmt.Errorf("split frames: more than %d JPEG start markers in %d fragments", frames, len(fragments))
			}
			out = append(out, append([]byte(nil), f...))
			continue
		}
		out[len(out)-1] = append(out[len(out)-1], f...)
	}
	if len(out) != frames {
		return nil, fmt.Errorf("split frames: found %d JPEG start markers in %d fragments, want %d frames", len(out), len(fragments), frames)
	}
	return out, nil
}

func splitByOffsets(fragments [][]byte, offsets []uint32, frames int) ([][]byte, error) {
	if len(offsets) != frames {
		return nil, fmt.Errorf("split frames: basic offset table has %d entries for %d frames", len(offsets), frames)
	}
	out := make([][]byte, frames)
	pos := uint64(0)
	k := -1
	for _, f := range fragments {
		// Move to the frame whose offset is this fragment's position; an offset that falls
		// inside a fragment matches no position and is caught below.
		for k+1 < frames && uint64(offsets[k+1]) == pos {
			k++
			if out[k] != nil {
				return nil, fmt.Errorf("split frames: offset table entry %d repeats an offset", k)
			}
			out[k] = []byte{}
		}
		if k < 0 {
			return nil, fmt.Errorf("split frames: first offset %d is not 0", offsets[0])
		}
		if k+1 < frames && uint64(offsets[k+1]) < pos {
			return nil, fmt.Errorf("split frames: offset %d of frame %d does not start a fragment", offsets[k+1], k+1)
		}
		out[k] = append(out[k], f...)
		pos += 8 + uint64(len(f))
	}
	if k != frames-1 {
		return nil, fmt.Errorf("split frames: offset table points past the %d fragments (frame %d of %d found)", len(fragments), k+1, frames)
	}
	return out, nil
}
