package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// NextMessageID returns a fresh message ID for a request this side originates (the requestor's
// commands, and an SCP's C-STORE sub-operations of C-GET).
func (a *Association) NextMessageID() uint16 {
	a.nextID++
	if a.nextID == 0 {
		a.nextID = 1
	}
	return a.nextID
}

// PollCancel reports, without blocking, whether the peer sent C-CANCEL-RQ for messageID. An SCP
// calls it between pending responses. Any other message at that point breaks the asynchronous
// operations window of 1 and ends the association.
func (a *Association) PollCancel(messageID uint16) (bool, error) {
	more, err := a.pending()
	if err != nil {
		return false, a.transportError(err)
	}
	if !more {
		return false, nil
	}
	_, msg, data, err := a.ReadMessage(a.timeouts.DIMSE)
	if err != nil {
		return false, err
	}
	if c, ok := msg.(*CCancelRQ); ok && data == nil {
		return c.MessageIDBeingRespondedTo == messageID, nil
	}
	return false, a.abortProvider(protoErr(AbortReasonUnexpectedParameter, "command 0x%04X while message %d is in progress", msg.CommandField(), messageID))
}

// StoreOptions are the optional parts of a C-STORE-RQ.
type StoreOptions struct {
	Priority uint16
	// Set for the sub-operations of a C-MOVE (PS3.7 9.1.1.1).
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

// StoreWithOptions is Store with the optional command fields.
func (c *Client) StoreWithOptions(ctx context.Context, sopClass, sopInstance, transferSyntax string, data io.Reader, opts StoreOptions) (Status, error) {
	pc, ok := c.FindContext(sopClass, transferSyntax)
	if !ok {
		return Status{}, fmt.Errorf("store %s: no accepted presentation context for SOP class %s with transfer syntax %s", sopInstance, sopClass, transferSyntax)
	}
	id := c.messageID()
	rq := &CStoreRQ{MessageID: id, Priority: opts.Priority, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance,
		MoveOriginatorAETitle: opts.MoveOriginatorAETitle, MoveOriginatorMessageID: opts.MoveOriginatorMessageID}
	rsp, err := c.roundTrip(ctx, pc, rq, data)
	if err != nil {
		return Status{}, fmt.Errorf("store %s: %w", sopInstance, err)
	}
	r, ok := rsp.(*CStoreRSP)
	if !ok || r.MessageIDBeingRespondedTo != id {
		return Status{}, c.unexpected("store", rsp)
	}
	return r.Status, nil
}

// Find sends C-FIND-RQ with an identifier (encoded in the context's transfer syntax) and calls
// onMatch with each pending response's identifier. It returns the final status. onMatch returning
// ErrCancel sends C-CANCEL-RQ and goes on reading until the peer's final response.
func (c *Client) Find(ctx context.Context, sopClass string, identifier []byte, onMatch func(identifier []byte) error) (Status, error) {
	pc, ok := c.FindContext(sopClass, "")
	if !ok {
		return Status{}, fmt.Errorf("find: the peer did not accept %s", sopClass)
	}
	id := c.messageID()
	final, err := c.multiResponse(ctx, pc, &CFindRQ{MessageID: id, AffectedSOPClassUID: sopClass}, identifier, id,
		func(m Message, data []byte) error {
			if len(data) == 0 {
				return nil
			}
			return onMatch(data)
		}, nil)
	if err != nil {
		return Status{}, fmt.Errorf("find: %w", err)
	}
	return final.status, nil
}

// ErrCancel, returned by a callback, asks the peer to cancel the operation (C-CANCEL-RQ).
var ErrCancel = errors.New("cancel requested")

// RetrieveResult is the final response of a C-MOVE or C-GET.
type RetrieveResult struct {
	Status        Status
	SubOperations SubOperations
	// FailedInstances is the Failed SOP Instance UID List identifier, when the peer sent one.
	Identifier []byte
}

// Move sends C-MOVE-RQ; onPending sees each pending response's sub-operation counts.
func (c *Client) Move(ctx context.Context, sopClass, destination string, identifier []byte, onPending func(SubOperations) error) (RetrieveResult, error) {
	pc, ok := c.FindContext(sopClass, "")
	if !ok {
		return RetrieveResult{}, fmt.Errorf("move: the peer did not accept %s", sopClass)
	}
	id := c.messageID()
	res, err := c.retrieve(ctx, pc, &CMoveRQ{MessageID: id, AffectedSOPClassUID: sopClass, MoveDestination: destination}, identifier, id, onPending, nil)
	if err != nil {
		return RetrieveResult{}, fmt.Errorf("move: %w", err)
	}
	return res, nil
}

// StoreHandler receives the C-STORE sub-operations of a C-GET on the same association and returns
// the status to answer. data must be read to its end or left; the rest is drained.
type StoreHandler func(rq *CStoreRQ, pc *PresentationContext, data io.Reader) Status

// Get sends C-GET-RQ and serves the C-STORE sub-operations that arrive on the association.
func (c *Client) Get(ctx context.Context, sopClass string, identifier []byte, onStore StoreHandler, onPending func(SubOperations) error) (RetrieveResult, error) {
	pc, ok := c.FindContext(sopClass, "")
	if !ok {
		return RetrieveResult{}, fmt.Errorf("get: the peer did not accept %s", sopClass)
	}
	id := c.messageID()
	res, err := c.retrieve(ctx, pc, &CGetRQ{MessageID: id, AffectedSOPClassUID: sopClass}, identifier, id, onPending, onStore)
	if err != nil {
		return RetrieveResult{}, fmt.Errorf("get: %w", err)
	}
	return res, nil
}

// retrieve runs a C-MOVE or C-GET exchange, keeping the latest counts and identifier.
func (c *Client) retrieve(ctx context.Context, pc *PresentationContext, rq Message, identifier []byte, id uint16,
	onPending func(SubOperations) error, onStore StoreHandler) (RetrieveResult, error) {
	var res RetrieveResult
	final, err := c.multiResponse(ctx, pc, rq, identifier, id, func(m Message, data []byte) error {
		var st Status
		switch r := m.(type) {
		case *CMoveRSP:
			st, res.SubOperations = r.Status, r.SubOperations
		case *CGetRSP:
			st, res.SubOperations = r.Status, r.SubOperations
		}
		res.Identifier = data
		if st.IsPending() && onPending != nil {
			return onPending(res.SubOperations)
		}
		return nil
	}, onStore)
	if err != nil {
		return RetrieveResult{}, err
	}
	res.Status = final.status
	return res, nil
}

type finalResponse struct{ status Status }

// multiResponse sends a request with its identifier and reads responses until the final one,
// serving C-STORE sub-operations (C-GET) when a handler is given.
func (c *Client) multiResponse(ctx context.Context, pc *PresentationContext, rq Message, identifier []byte, id uint16,
	onResponse func(Message, []byte) error, onStore StoreHandler) (finalResponse, error) {
	a := c.a
	stop := context.AfterFunc(ctx, func() { _ = a.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := a.SendMessage(pc, rq, bytes.NewReader(identifier)); err != nil {
		return finalResponse{}, err
	}
	cancelled := false
	for {
		rpc, msg, data, err := a.ReadMessage(a.timeouts.DIMSE)
		if err != nil {
			if ctx.Err() != nil {
				return finalResponse{}, ctx.Err()
			}
			return finalResponse{}, err
		}
		if st, ok := msg.(*CStoreRQ); ok && onStore != nil {
			status := onStore(st, rpc, data)
			if d, ok := data.(*dataReader); ok {
				if err := d.drain(); err != nil {
					return finalResponse{}, err
				}
			}
			rsp := &CStoreRSP{MessageIDBeingRespondedTo: st.MessageID, AffectedSOPClassUID: st.AffectedSOPClassUID,
				AffectedSOPInstanceUID: st.AffectedSOPInstanceUID, Status: status}
			if err := a.SendMessage(rpc, rsp, nil); err != nil {
				return finalResponse{}, err
			}
			continue
		}
		r, ok := msg.(Response)
		if !ok || r.CommandField() != rq.CommandField()|0x8000 || responseID(r) != id {
			_ = a.Abort()
			return finalResponse{}, fmt.Errorf("%w: unexpected command 0x%04X", ErrAborted, msg.CommandField())
		}
		var body []byte
		if data != nil {
			if body, err = io.ReadAll(io.LimitReader(data, maxCommandSetLength*16+1)); err != nil {
				return finalResponse{}, err
			}
			if len(body) > maxCommandSetLength*16 {
				_ = a.Abort()
				return finalResponse{}, fmt.Errorf("%w: response identifier over %d bytes", ErrAborted, maxCommandSetLength*16)
			}
		}
		cbErr := onResponse(msg, body)
		if !r.status().IsPending() {
			return finalResponse{status: r.status()}, nil
		}
		if cbErr != nil {
			if !errors.Is(cbErr, ErrCancel) {
				_ = a.Abort()
				return finalResponse{}, cbErr
			}
			if !cancelled {
				cancelled = true
				if err := a.SendMessage(pc, &CCancelRQ{MessageIDBeingRespondedTo: id}, nil); err != nil {
					return finalResponse{}, err
				}
			}
		}
	}
}

func responseID(r Response) uint16 {
	switch m := r.(type) {
	case *CFindRSP:
		return m.MessageIDBeingRespondedTo
	case *CMoveRSP:
		return m.MessageIDBeingRespondedTo
	case *CGetRSP:
		return m.MessageIDBeingRespondedTo
	case *CStoreRSP:
		return m.MessageIDBeingRespondedTo
	case *CEchoRSP:
		return m.MessageIDBeingRespondedTo
	}
	return 0
}

// pendingByDeadline is the portable fallback: wait a millisecond for a byte.
func (a *Association) pendingByDeadline() (bool, error) {
	_ = a.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := a.r.Peek(1)
	switch {
	case err == nil:
		return true, nil
	case isTimeout(err):
		return false, nil
	}
	return false, err
}
