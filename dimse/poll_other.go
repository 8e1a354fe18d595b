//go:build !unix

package dimse

func (a *Association) pending() (bool, error) {
	if a.pduLeft > 0 || a.r.Buffered() > 0 {
		return true, nil
	}
	return a.pendingByDeadline()
}
