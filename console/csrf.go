package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
)

// CSRF protection is a double-submit cookie with an origin check: every page sets a random token
// in a cookie only this origin's requests carry (SameSite=Strict) and puts it in its forms; a
// POST must carry the same token in its form and, when the browser says where it comes from
// (Origin, Referer, Sec-Fetch-Site), come from this host. Another site's page can make the
// browser send the cookie's request neither with the token, which it cannot read, nor with this
// origin.
const (
	csrfCookie   = "espnode_console_csrf"
	csrfField    = "csrf"
	csrfBytes    = 32
	maxFormBytes = 64 << 10
)

var errCSRF = errors.New("missing or wrong CSRF token (reload the page)")

// csrfToken returns the request's token, setting a new one in a cookie when it has none.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		return c.Value
	}
	b := make([]byte, csrfBytes)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: Root, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok
}

func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == csrfBytes
}

// checkCSRF refuses a state-changing request that another origin may have made.
func checkCSRF(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return errors.New("cross-site request (Sec-Fetch-Site: " + site + ")")
	}
	for _, h := range []string{"Origin", "Referer"} {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host != r.Host {
			return errors.New("request from another origin (" + h + ")")
		}
		break
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !validToken(c.Value) {
		return errCSRF
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errors.New("form: " + err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(c.Value)) != 1 {
		return errCSRF
	}
	return nil
}
