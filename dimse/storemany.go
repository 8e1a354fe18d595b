package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// StoreRequest is one C-STORE of StoreMany.
type StoreRequest struct {
	SOPClassUID, SOPInstanceUID, TransferSyntaxUID string
	// Open returns the data set (without file meta information); it is closed once sent.
	Open func() (io.ReadCloser, error)
}

// StoreResult is the outcome of one request of StoreMany.
type StoreResult struct {
	// Index is the request's position in the slice given to StoreMany.
	Index  int
	Status Status
	// Latency runs from the first byte of the request to its response.
	Latency time.Duration
}

// StoreMany sends the requests in order, keeping up to Window() of them outstanding at once: one
// at a time, as Store does, unless the acceptor granted an asynchronous operations window. done
// is called for each response, in the order they arrive (the order of the requests only with a
// window of 1), from a goroutine of StoreMany's. A request that cannot be sent, a response that
// answers nothing outstanding or a broken association ends it with an error; statuses, even
// failures, are the caller's to judge.
func (c *Client) StoreMany(ctx context.Context, reqs []StoreRequest, done func(StoreResult)) error {
	a := c.a
	stop := context.AfterFunc(ctx, func() { _ = a.conn.SetDeadline(time.Now()) })
	defer stop()
	type outstanding struct {
		index int
		sent  time.Time
	}
	slots := make(chan struct{}, a.Window())
	var mu sync.Mutex
	pending := map[uint16]outstanding{}
	readErr := make(chan error, 1)
	go func() {
		readErr <- func() error {
			for range reqs {
				_, msg, data, err := a.ReadMessage(a.timeouts.DIMSE)
				if err != nil {
					return err
				}
				if d, ok := data.(*dataReader); ok {
					if err := d.drain(); err != nil {
						return err
					}
				}
				rsp, ok := msg.(*CStoreRSP)
				if !ok {
					return c.unexpected("store", msg)
				}
				mu.Lock()
				o, ok := pending[rsp.MessageIDBeingRespondedTo]
				delete(pending, rsp.MessageIDBeingRespondedTo)
				mu.Unlock()
				if !ok {
					return c.unexpected("store", msg)
				}
				done(StoreResult{Index: o.index, Status: rsp.Status, Latency: time.Since(o.sent)})
				<-slots
			}
			return nil
		}()
	}()
	fail := func(err error) error {
		_ = a.Abort()
		<-readErr
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	for i, r := range reqs {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			// The reader ended early: it failed (it has answered every request otherwise).
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("store %s: %w", r.SOPInstanceUID, err)
		}
		if err := c.sendStore(r, func(id uint16) {
			mu.Lock()
			pending[id] = outstanding{index: i, sent: time.Now()}
			mu.Unlock()
		}); err != nil {
			return fail(fmt.Errorf("store %s: %w", r.SOPInstanceUID, err))
		}
	}
	if err := <-readErr; err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// sendStore sends one C-STORE-RQ with its data set; registering the message ID comes first, so
// the response cannot arrive before it is expected.
func (c *Client) sendStore(r StoreRequest, register func(id uint16)) error {
	pc, ok := c.FindContext(r.SOPClassUID, r.TransferSyntaxUID)
	if !ok {
		return fmt.Errorf("no accepted presentation context for SOP class %s with transfer syntax %s", r.SOPClassUID, r.TransferSyntaxUID)
	}
	if r.Open == nil {
		return errors.New("no data set")
	}
	data, err := r.Open()
	if err != nil {
		return err
	}
	defer data.Close()
	id := c.messageID()
	register(id)
	return c.a.SendMessage(pc, &CStoreRQ{MessageID: id, AffectedSOPClassUID: r.SOPClassUID, AffectedSOPInstanceUID: r.SOPInstanceUID}, data)
}
