package dicomweb

import (
	"errors"
	"fmt"
	"mime"
	"sort"
	"strconv"
	"strings"
)

// mediaRange is one acceptable media type of an Accept header (RFC 9110 §12.5.1), with the
// parameters PS3.18 §8.7.3 gives it: type (of a multipart/related payload) and transfer-syntax.
type mediaRange struct {
	mediaType string // lower case: "multipart/related", "application/dicom", "image/*", "*/*"
	// partType is the type parameter of multipart/related (lower case, quotes removed); "" when
	// absent.
	partType string
	// syntax is the transfer-syntax parameter: a UID, "*" (any), or "" (the default).
	syntax string
	q      float64
	order  int
}

// Bounds on an Accept header: a client needs a handful of ranges.
const (
	maxAcceptRanges = 64
	maxAcceptLength = 8 << 10
)

var errBadAccept = errors.New("malformed Accept header")

// parseAccept reads the acceptable media types of the Accept headers (or of the accept query
// parameter, which takes their place), best first; a request without any accepts everything.
func parseAccept(values []string) ([]mediaRange, error) {
	total := 0
	var ranges []mediaRange
	for _, v := range values {
		total += len(v)
		if total > maxAcceptLength {
			return nil, fmt.Errorf("%w: longer than %d bytes", errBadAccept, maxAcceptLength)
		}
		for _, part := range splitOutsideQuotes(v, ',') {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if len(ranges) == maxAcceptRanges {
				return nil, fmt.Errorf("%w: more than %d media ranges", errBadAccept, maxAcceptRanges)
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				// Some clients leave the type parameter's slash unquoted, which RFC 9110 does not
				// allow but every server reads: quote it and try again.
				mt, params, err = mime.ParseMediaType(quoteTypeParam(part))
				if err != nil {
					return nil, fmt.Errorf("%w: %q: %v", errBadAccept, part, err)
				}
			}
			r := mediaRange{mediaType: mt, partType: strings.ToLower(params["type"]), syntax: params["transfer-syntax"], q: 1, order: len(ranges)}
			if qs, ok := params["q"]; ok {
				q, err := strconv.ParseFloat(qs, 64)
				if err != nil || q < 0 || q > 1 {
					return nil, fmt.Errorf("%w: q=%q", errBadAccept, qs)
				}
				r.q = q
			}
			if r.q > 0 {
				ranges = append(ranges, r)
			}
		}
	}
	if len(values) == 0 {
		ranges = []mediaRange{{mediaType: "*/*", q: 1}}
	}
	sort.SliceStable(ranges, func(a, b int) bool { return ranges[a].q > ranges[b].q })
	return ranges, nil
}

// splitOutsideQuotes splits s at sep, except inside double quotes.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// quoteTypeParam quotes unquoted parameter values holding a slash ("type=application/dicom").
func quoteTypeParam(s string) string {
	parts := splitOutsideQuotes(s, ';')
	for i, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		v = strings.TrimSpace(v)
		if ok && !strings.HasPrefix(v, `"`) && strings.Contains(v, "/") {
			parts[i+1] = k + `="` + v + `"`
		}
	}
	return strings.Join(parts, ";")
}

// matches reports whether the range admits a media type ("multipart/related" with the part's
// type, or a single-part type).
func (r mediaRange) matches(mediaType string) bool {
	switch {
	case r.mediaType == "*/*":
		return true
	case strings.HasSuffix(r.mediaType, "/*"):
		return strings.HasPrefix(mediaType, strings.TrimSuffix(r.mediaType, "*"))
	}
	return r.mediaType == mediaType
}

// multipartOf reports whether the range admits multipart/related parts of partType (a range
// without a type parameter admits the resource's default, given as def).
func (r mediaRange) multipartOf(partType, def string) bool {
	if !r.matches("multipart/related") {
		return false
	}
	pt := r.partType
	if pt == "" {
		pt = def
	}
	if pt == partType {
		return true
	}
	if strings.HasSuffix(pt, "/*") {
		return strings.HasPrefix(partType, strings.TrimSuffix(pt, "*"))
	}
	return pt == "*/*"
}

// Media types of the resources.
const (
	typeDICOM       = "application/dicom"
	typeDICOMJSON   = "application/dicom+json"
	typeJSON        = "application/json"
	typeOctetStream = "application/octet-stream"
	typeMultipart   = "multipart/related"
)
