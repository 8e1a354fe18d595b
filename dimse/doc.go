// Package dimse is the node's DICOM upper layer (PS3.8) and DIMSE-C message exchange (PS3.7), in
// both roles: a Server accepts associations and serves their requests, one goroutine for each
// association; a Client requests one association and sends requests on it.
//
// Where each part of the standards lives:
//
//	fsm.go       PS3.8 9.2, the upper layer state machine: states Sta1..Sta13 (Tables 9-1 to 9-5),
//	             actions AE-n, DT-n, AR-n, AA-n (Tables 9-6 to 9-9), one function each, and Table
//	             9-10, the event x state table, as a literal laid out as the standard prints it.
//	pdu.go       PS3.8 9.3, the seven PDUs and the items of their variable fields: presentation
//	             contexts (9.3.2.2, 9.3.3.2), user information (9.3.2.3, Annex D; PS3.7 D.3.3),
//	             PDV items (9.3.5.1, Annex E). One Go type per wire structure, its encoder and
//	             decoder side by side; every length is checked against a limit before the bytes
//	             it announces are read.
//	assoc.go     PS3.8 9.1 and 7, an association over TCP: ARTIM and the other timers (9.1.5),
//	             DIMSE messages fragmented into and reassembled from P-DATA-TF PDVs, data sets
//	             streamed from and to the wire; release (7.2, collisions included) and abort
//	             (7.3, 7.4).
//	command.go   PS3.7 9.3 and Annex E, the command sets of C-ECHO, C-STORE, C-FIND, C-MOVE,
//	             C-GET and C-CANCEL: one Go type per message, its encoder and decoder side by
//	             side; statuses (PS3.7 Annex C).
//	server.go    The acceptor: the accept loop and the admission of connections (pending ones
//	             bounded apart from associations), association negotiation (PS3.8 7.1, PS3.7
//	             D.3: AE titles, presentation contexts, SCP/SCU roles, the asynchronous
//	             operations window) and dispatch of requests to handlers by SOP class and
//	             command field; with a window above 1, C-STOREs and C-ECHOs performed at once,
//	             each in its own goroutine once its data set is in.
//	client.go    The requestor: A-ASSOCIATE (Dial), C-ECHO, C-STORE, release and abort.
//	storemany.go C-STOREs in a row, as many outstanding as the acceptor's window allows.
//	retrieve.go  C-FIND, C-MOVE and C-GET as a requestor (PS3.4 C.4), C-CANCEL, and an SCP's look
//	             for a C-CANCEL between its pending responses.
//	tls.go       PS3.15 Annex B: the BCP 195 profiles, the acceptor's handshake within ARTIM's first
//	             run, the requestor's; the names of a certificate for an allow-list.
//	poll_*.go    That look, without blocking and without consuming what the peer sent.
//	uids.go      The UIDs the upper layer itself needs.
//
// The state machine is the only place that decides what an event means in a state: the reading
// and writing code turns what happens on the wire into events (Evt1..Evt19), fires them, and acts
// on the action that ran.
package dimse
