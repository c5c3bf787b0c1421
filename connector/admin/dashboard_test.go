package admin

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestSignOutOnlyWhenSignedIn: the sign-in page, shown or refused, offers no Sign out
// button; a signed-in page offers one that carries the session's CSRF token.
func TestSignOutOnlyWhenSignedIn(t *testing.T) {
	a := New(Options{Token: "s3cret-admin-token", Loopback: true})
	mux := http.NewServeMux()
	if err := a.RegisterDashboard(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	page := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for what, body := range map[string]string{
		"the sign-in page":         page(client.Get(srv.URL + "/login")),
		"a refused sign-in":        page(client.PostForm(srv.URL+"/login", url.Values{"token": {"wrong"}})),
		"a page before signing in": page(client.Get(srv.URL + "/dead-letters")), // redirected to the sign-in page
	} {
		if !strings.Contains(body, "Sign in") {
			t.Fatalf("%s is not the sign-in page:\n%s", what, body)
		}
		if strings.Contains(body, "Sign out") || strings.Contains(body, `name="csrf"`) {
			t.Errorf("%s offers a Sign out button:\n%s", what, body)
		}
	}
	body := page(client.PostForm(srv.URL+"/login?next=/dead-letters", url.Values{"token": {"s3cret-admin-token"}}))
	if !strings.Contains(body, "Sign out") || !regexp.MustCompile(`name="csrf" value="[0-9a-f]{64}"`).MatchString(body) {
		t.Errorf("a signed-in page lacks the Sign out button with its CSRF token:\n%s", body)
	}
}
