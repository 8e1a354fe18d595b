// Package httpguard puts the node's HTTP listeners behind what every request must pass:
// authentication (bearer tokens or HTTP basic, compared in constant time), a bound on request
// bodies, and CORS only for the origins configured. It knows nothing of what it guards.
package httpguard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// User is an HTTP basic account.
type User struct {
	Name, Password string
}

// Options configure a Guard. With neither Tokens nor Users every request is let through (the
// configuration allows that only on loopback).
type Options struct {
	// Tokens are the accepted bearer tokens (RFC 6750).
	Tokens []string
	// Users are the accepted basic credentials (RFC 7617).
	Users []User
	// Realm names the protection space in WWW-Authenticate.
	Realm string
	// Open are paths served without authentication (health probes).
	Open []string
	// MaxBody bounds every request body; 0 leaves bodies to the handler.
	MaxBody int64
	// CORSOrigins are the origins (scheme://host[:port]) whose pages may call the listener
	// from a browser, with the browser's credentials; "*" is any other origin, without them.
	// Empty: no CORS headers, so the browser's same-origin policy holds.
	CORSOrigins []string
}

// Guard is the middleware.
type Guard struct {
	opts   Options
	tokens [][sha256.Size]byte
	users  []user
}

type user struct{ name, password [sha256.Size]byte }

// New returns the guard of opts.
func New(opts Options) *Guard {
	g := &Guard{opts: opts}
	if g.opts.Realm == "" {
		g.opts.Realm = "espnode"
	}
	// Digests have one length whatever the secret's, so comparing them tells nothing of it.
	for _, t := range opts.Tokens {
		g.tokens = append(g.tokens, sha256.Sum256([]byte(t)))
	}
	for _, u := range opts.Users {
		g.users = append(g.users, user{sha256.Sum256([]byte(u.Name)), sha256.Sum256([]byte(u.Password))})
	}
	return g
}

// Authenticating reports whether requests need credentials.
func (g *Guard) Authenticating() bool { return len(g.tokens) > 0 || len(g.users) > 0 }

// Wrap returns h behind the guard.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		preflight := g.cors(w, r)
		if preflight {
			// A CORS preflight carries no credentials by design; it learns only what the
			// headers above say.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if g.Authenticating() && !slices.Contains(g.opts.Open, r.URL.Path) && !g.authorized(r) {
			w.Header().Add("WWW-Authenticate", `Basic realm="`+g.opts.Realm+`", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="`+g.opts.Realm+`"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if g.opts.MaxBody > 0 && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, g.opts.MaxBody)
		}
		h.ServeHTTP(w, r)
	})
}

// authorized checks the request's credentials against every configured one, without stopping
// at the first match, so that the time taken does not say which it was.
func (g *Guard) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	ok := 0
	switch {
	case strings.EqualFold(scheme, "Bearer") && len(g.tokens) > 0:
		d := sha256.Sum256([]byte(cred))
		for _, t := range g.tokens {
			ok |= subtle.ConstantTimeCompare(d[:], t[:])
		}
	case strings.EqualFold(scheme, "Basic") && len(g.users) > 0:
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return false
		}
		name, password, found := strings.Cut(string(raw), ":")
		if !found {
			return false
		}
		dn, dp := sha256.Sum256([]byte(name)), sha256.Sum256([]byte(password))
		for _, u := range g.users {
			ok |= subtle.ConstantTimeCompare(dn[:], u.name[:]) & subtle.ConstantTimeCompare(dp[:], u.password[:])
		}
	}
	return ok == 1
}

// cors sets the CORS headers for an allowed origin and reports a preflight request it answered.
func (g *Guard) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(g.opts.CORSOrigins) == 0 {
		return false
	}
	w.Header().Add("Vary", "Origin")
	if !slices.Contains(g.opts.CORSOrigins, "*") && !slices.Contains(g.opts.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	if slices.Contains(g.opts.CORSOrigins, origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		if g.Authenticating() {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	} else {
		// Any origin, but without the browser's credentials (a basic account it remembers):
		// a page of any site could otherwise read the node as the user. A script that sends
		// its own Authorization header still can.
		h.Set("Access-Control-Allow-Origin", "*")
	}
	h.Set("Access-Control-Expose-Headers", "Content-Type, Content-Length, Content-Location, Warning")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Accept, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		return true
	}
	return false
}
