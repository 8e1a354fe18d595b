package onnx

import (
	"errors"
	"fmt"
	"sort"
)

// Binding maps a decoding channel to the model file that serves it. The published checkpoints
// give one file per channel and a universal model one file for all; both are a list of bindings.
type Binding struct {
	// Channel is the channel name (seg/channel's names: dermoscopy, xray, ...).
	Channel string
	// Model is the model file's path.
	Model string
	// Query overrides the modality index fed to the model; nil takes the file's metadata.
	Query *int64
}

// Route is where a channel's images go: a model and the channel as that model describes it
// (with Query set to the index to feed it).
type Route struct {
	Model   *Model
	Channel ChannelInfo
	// Input is how the channel's images are fed to the model (Predict).
	Input ChannelInput
	// Bounds are the channel's plausibility bounds, nil when the file gives none.
	Bounds *ChannelBounds
}

// route is the Route of the file's channel c (by its name in the file).
func route(m *Model, c ChannelInfo) Route {
	return Route{Model: m, Channel: c, Input: m.Metadata().Input(c.Name), Bounds: m.Metadata().Bounds(c.Name)}
}

// Engine holds the models of a channel map, each file opened once however many channels it serves.
type Engine struct {
	models map[string]*Model
	routes map[string]Route
}

// OpenUniversal opens one model file and routes every channel its metadata lists to it.
func OpenUniversal(path string, opts Options) (*Engine, error) {
	m, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	e := &Engine{models: map[string]*Model{path: m}, routes: map[string]Route{}}
	for _, c := range m.Metadata().Channels {
		e.routes[c.Name] = route(m, c)
	}
	return e, nil
}

// NewEngine opens the files that bindings name and checks that each file knows its channel.
func NewEngine(bindings []Binding, opts Options) (*Engine, error) {
	if len(bindings) == 0 {
		return nil, errors.New("channel map is empty")
	}
	e := &Engine{models: map[string]*Model{}, routes: map[string]Route{}}
	for _, b := range bindings {
		if _, dup := e.routes[b.Channel]; dup {
			e.Close()
			return nil, fmt.Errorf("channel map: channel %q is bound twice", b.Channel)
		}
		m, ok := e.models[b.Model]
		if !ok {
			var err error
			if m, err = Open(b.Model, opts); err != nil {
				e.Close()
				return nil, fmt.Errorf("channel %s: %w", b.Channel, err)
			}
			e.models[b.Model] = m
		}
		c, ok := m.Metadata().Channel(b.Channel)
		r := route(m, c)
		if !ok {
			if len(m.Metadata().Channels) != 1 || b.Query == nil {
				e.Close()
				return nil, fmt.Errorf("channel map: %s does not list channel %q (it has %s)", b.Model, b.Channel, channelNames(m.Metadata()))
			}
			// A single-channel file may be bound under another name when the query is explicit.
			c = m.Metadata().Channels[0]
			// Its input mode and bounds are the file's for the channel it describes.
			r = route(m, c)
			c.Name = b.Channel
		}
		if b.Query != nil {
			c.Query = *b.Query
		}
		if !m.hasQuery(c.Query) {
			e.Close()
			return nil, fmt.Errorf("channel map: query %d for channel %q is not a query of %s", c.Query, b.Channel, b.Model)
		}
		r.Channel = c
		e.routes[b.Channel] = r
	}
	return e, nil
}

func channelNames(md *Metadata) []string {
	var names []string
	for _, c := range md.Channels {
		names = append(names, c.Name)
	}
	return names
}

// Route returns the model and query that serve a channel.
func (e *Engine) Route(channel string) (Route, error) {
	r, ok := e.routes[channel]
	if !ok {
		return Route{}, fmt.Errorf("no model serves channel %q (served: %v)", channel, e.Channels())
	}
	return r, nil
}

// Channels returns the channels the engine serves, sorted.
func (e *Engine) Channels() []string {
	names := make([]string, 0, len(e.routes))
	for n := range e.routes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close closes every model.
func (e *Engine) Close() error {
	var errs []error
	for _, m := range e.models {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}
