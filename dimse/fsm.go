package dimse

import "fmt"

// The upper layer state machine of PS3.8 9.2. The names below are the standard's: states Sta1..Sta13
// (Table 9-2), events Evt1..Evt19 (Table 9-1), actions AE-n, DT-n, AR-n, AA-n (Tables 9-6 to 9-9),
// and transition() is Table 9-10 row by row, so the two can be read side by side.

type state uint8

const (
	sta1  state = 1 + iota // Idle
	sta2                   // Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
	sta3                   // Awaiting local A-ASSOCIATE response primitive
	sta4                   // Awaiting transport connection opening to complete
	sta5                   // Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
	sta6                   // Association established and ready for data transfer
	sta7                   // Awaiting A-RELEASE-RP PDU
	sta8                   // Awaiting local A-RELEASE response primitive
	sta9                   // Release collision requestor side; awaiting A-RELEASE response
	sta10                  // Release collision acceptor side; awaiting A-RELEASE-RP PDU
	sta11                  // Release collision requestor side; awaiting A-RELEASE-RP PDU
	sta12                  // Release collision acceptor side; awaiting A-RELEASE response primitive
	sta13                  // Awaiting transport connection close indication
)

func (s state) String() string { return fmt.Sprintf("Sta%d", uint8(s)) }

type event uint8

const (
	evt1  event = 1 + iota // A-ASSOCIATE request (local user)
	evt2                   // Transport connect confirmation (local transport service)
	evt3                   // A-ASSOCIATE-AC PDU received
	evt4                   // A-ASSOCIATE-RJ PDU received
	evt5                   // Transport connection indication
	evt6                   // A-ASSOCIATE-RQ PDU received
	evt7                   // A-ASSOCIATE response primitive (accept)
	evt8                   // A-ASSOCIATE response primitive (reject)
	evt9                   // P-DATA request primitive
	evt10                  // P-DATA-TF PDU received
	evt11                  // A-RELEASE request primitive
	evt12                  // A-RELEASE-RQ PDU received
	evt13                  // A-RELEASE-RP PDU received
	evt14                  // A-RELEASE response primitive
	evt15                  // A-ABORT request primitive
	evt16                  // A-ABORT PDU received
	evt17                  // Transport connection closed indication
	evt18                  // ARTIM timer expired
	evt19                  // Unrecognized or invalid PDU received
)

func (e event) String() string { return fmt.Sprintf("Evt%d", uint8(e)) }

// eventForPDU maps a received PDU type to its event.
func eventForPDU(t PDUType) event {
	switch t {
	case TypeAssociateAC:
		return evt3
	case TypeAssociateRJ:
		return evt4
	case TypeAssociateRQ:
		return evt6
	case TypePDataTF:
		return evt10
	case TypeReleaseRQ:
		return evt12
	case TypeReleaseRP:
		return evt13
	case TypeAbort:
		return evt16
	}
	return evt19
}

type action uint8

const (
	actNone action = iota // the event is not valid in the state: a programming error for local events
	ae1                   // Issue TRANSPORT CONNECT request primitive -> Sta4
	ae2                   // Send A-ASSOCIATE-RQ PDU -> Sta5
	ae3                   // Issue A-ASSOCIATE confirmation (accept) -> Sta6
	ae4                   // Issue A-ASSOCIATE confirmation (reject), close transport -> Sta1
	ae5                   // Issue transport connection response; start ARTIM -> Sta2
	ae6                   // Stop ARTIM; if acceptable issue A-ASSOCIATE indication -> Sta3, else send A-ASSOCIATE-RJ, start ARTIM -> Sta13
	ae7                   // Send A-ASSOCIATE-AC PDU -> Sta6
	ae8                   // Send A-ASSOCIATE-RJ PDU, start ARTIM -> Sta13
	dt1                   // Send P-DATA-TF PDU -> Sta6
	dt2                   // Send P-DATA indication -> Sta6
	ar1                   // Send A-RELEASE-RQ PDU -> Sta7
	ar2                   // Issue A-RELEASE indication -> Sta8
	ar3                   // Issue A-RELEASE confirmation, close transport -> Sta1
	ar4                   // Send A-RELEASE-RP PDU, start ARTIM -> Sta13
	ar5                   // Stop ARTIM -> Sta1
	ar6                   // Issue P-DATA indication -> Sta7
	ar7                   // Send P-DATA-TF PDU -> Sta8
	ar8                   // Issue A-RELEASE indication (collision): requestor -> Sta9, acceptor -> Sta10
	ar9                   // Send A-RELEASE-RP PDU -> Sta11
	ar10                  // Issue A-RELEASE confirmation -> Sta12
	aa1                   // Send A-ABORT PDU (service-user source), (re)start ARTIM -> Sta13
	aa2                   // Stop ARTIM if running, close transport -> Sta1
	aa3                   // Issue A-ABORT or A-P-ABORT indication, close transport -> Sta1
	aa4                   // Issue A-P-ABORT indication -> Sta1
	aa5                   // Stop ARTIM -> Sta1
	aa6                   // Ignore PDU -> Sta13
	aa7                   // Send A-ABORT PDU -> Sta13
	aa8                   // Send A-ABORT PDU (service-provider source), issue A-P-ABORT indication, start ARTIM -> Sta13
)

var actionNames = [...]string{"none", "AE-1", "AE-2", "AE-3", "AE-4", "AE-5", "AE-6", "AE-7", "AE-8",
	"DT-1", "DT-2", "AR-1", "AR-2", "AR-3", "AR-4", "AR-5", "AR-6", "AR-7", "AR-8", "AR-9", "AR-10",
	"AA-1", "AA-2", "AA-3", "AA-4", "AA-5", "AA-6", "AA-7", "AA-8"}

func (a action) String() string { return actionNames[a] }

// transition is PS3.8 Table 9-10: the action for an event in a state.
func transition(e event, s state) action {
	// States 6..12 share most answers to unexpected PDUs.
	established := s >= sta6 && s <= sta12
	switch e {
	case evt1:
		if s == sta1 {
			return ae1
		}
	case evt2:
		if s == sta4 {
			return ae2
		}
	case evt3:
		switch {
		case s == sta2:
			return aa1
		case s == sta3, established:
			return aa8
		case s == sta5:
			return ae3
		case s == sta13:
			return aa6
		}
	case evt4:
		switch {
		case s == sta2:
			return aa1
		case s == sta3, established:
			return aa8
		case s == sta5:
			return ae4
		case s == sta13:
			return aa6
		}
	case evt5:
		if s == sta1 {
			return ae5
		}
	case evt6:
		switch {
		case s == sta2:
			return ae6
		case s == sta3, s == sta5, established:
			return aa8
		case s == sta13:
			return aa7
		}
	case evt7:
		if s == sta3 {
			return ae7
		}
	case evt8:
		if s == sta3 {
			return ae8
		}
	case evt9:
		switch s {
		case sta6:
			return dt1
		case sta8:
			return ar7
		}
	case evt10:
		switch {
		case s == sta2:
			return aa1
		case s == sta6:
			return dt2
		case s == sta7:
			return ar6
		case s == sta3, s == sta5, established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt11:
		if s == sta6 {
			return ar1
		}
	case evt12:
		switch {
		case s == sta2:
			return aa1
		case s == sta6:
			return ar2
		case s == sta7:
			return ar8
		case s == sta3, s == sta5, established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt13:
		switch {
		case s == sta2:
			return aa1
		case s == sta7, s == sta11:
			return ar3
		case s == sta10:
			return ar10
		case s == sta3, s == sta5, established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt14:
		switch s {
		case sta8, sta12:
			return ar4
		case sta9:
			return ar9
		}
	case evt15:
		switch {
		case s == sta4:
			return aa2
		case s == sta3, s == sta5, established:
			return aa1
		}
	case evt16:
		switch {
		case s == sta2, s == sta13:
			return aa2
		case s == sta3, s == sta5, established:
			return aa3
		}
	case evt17:
		switch {
		case s == sta2:
			return aa5
		case s == sta3, s == sta4, s == sta5, established:
			return aa4
		case s == sta13:
			return ar5
		}
	case evt18:
		switch s {
		case sta2, sta13:
			return aa2
		}
	case evt19:
		switch {
		case s == sta2:
			return aa1
		case s == sta3, s == sta5, established:
			return aa8
		case s == sta13:
			return aa7
		}
	}
	return actNone
}

// nextState is the state each action leads to (the right-hand column of Tables 9-6 to 9-9).
// AE-6 and AR-8 depend on a condition the caller resolves.
func nextState(a action, requestor, acceptable bool) state {
	switch a {
	case ae1:
		return sta4
	case ae2:
		return sta5
	case ae3, ae7, dt1, dt2:
		return sta6
	case ae5:
		return sta2
	case ae6:
		if acceptable {
			return sta3
		}
		return sta13
	case ar1, ar6:
		return sta7
	case ar2, ar7:
		return sta8
	case ar8:
		if requestor {
			return sta9
		}
		return sta10
	case ar9:
		return sta11
	case ar10:
		return sta12
	case ae8, ar4, aa1, aa6, aa7, aa8:
		return sta13
	}
	return sta1 // ae4, ar3, ar5, aa2, aa3, aa4, aa5
}
