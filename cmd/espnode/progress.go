package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress is a one-line progress bar on a terminal; off, every method does nothing.
type progress struct {
	w        io.Writer
	total, n int
	on       bool
	start    time.Time
}

func newProgress(w io.Writer, total int, on bool) *progress {
	p := &progress{w: w, total: total, on: on, start: time.Now()}
	p.draw()
	return p
}

func (p *progress) draw() {
	if !p.on {
		return
	}
	const width = 30
	filled := width * p.n / max(p.total, 1)
	rate := ""
	if el := time.Since(p.start).Seconds(); p.n > 0 && el > 0 {
		rate = fmt.Sprintf(" %.2f files/s", float64(p.n)/el)
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d%s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.n, p.total, rate)
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) step() { p.n++; p.draw() }

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
